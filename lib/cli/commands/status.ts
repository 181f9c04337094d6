import * as os from 'os';
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { formatIoFlusher } from '../../native/io-flusher.js';
import { mapInputOf, renderBar } from '../../health/map.js';
import { databaseEntries } from '../../meta/reconcile.js';
import type { PairStatus } from '../../pair/ops.js';
import type { Store } from '../../store/db.js';
import { formatBytes, opsFor, printJson, requirePair, withStore } from '../common.js';

interface Args {
  db?: string;
  name: string;
  json: boolean;
  entries: boolean;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status <name>',
  describe: 'Show a pair: devices, size, remapped blocks, spare use, and live counters while mounted',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
      .option('entries', { type: 'boolean', default: false, describe: 'with --json: add the remap table (every entry)' }),
  handler: async (argv) => {
    if (argv.entries && !argv.json) throw new UsageError('--entries adds the remap table to the JSON output: give --json with it');
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      const status = await opsFor(store, pair).status({});
      if (argv.json) return printJson({ version: 1, ...status, ...(argv.entries ? { entries: tableJson(store, pair.id) } : {}) });
      process.stdout.write(formatStatus(status));
      process.stdout.write(`${'map'.padEnd(14)}[${renderBar(mapInputOf(store, pair), 64)}]  (. ok, R remapped, P pending, s slow, blank unscanned)\n`);
    });
  },
};

/** The remap table as JSON entries (docs/cli.md): "none" blocks are null. */
function tableJson(store: Store, pairId: number): Array<Record<string, unknown>> {
  return databaseEntries(store, pairId).map((e) => ({
    mainBlock: e.mainBlock < 0 ? null : e.mainBlock,
    spareBlock: e.spareBlock < 0 ? null : e.spareBlock,
    state: e.state,
    reason: e.reason,
    lostSectors: e.lostSectors,
    createdAt: e.createdAt,
  }));
}

/** The engine line: which engine serves, and how the native one does its I/O. */
export function formatEngine(engine: string, n: PairStatus['negotiated']): string {
  if (engine !== 'native' || !n) return engine;
  const entries = n.fuseUringEntries ?? 0;
  const max = n.fuseUringEntriesMax ?? 0;
  const fring = entries ? `; FUSE over io_uring: ${max > entries ? `${entries} of ${max}` : entries} entries` : '';
  if (n.ringWorkers > 0) return `native (io_uring: ${n.ringWorkers} ring workers, ${n.poolThreads} pool threads${fring})`;
  const why = n.ringErrno ? `; io_uring unavailable: ${errnoName(n.ringErrno)}` : '';
  return `native (blocking: ${n.maxThreads} threads${why})`;
}

function errnoName(errno: number): string {
  const hit = Object.entries(os.constants.errno).find(([, v]) => v === errno);
  return hit ? hit[0] : `errno ${errno}`;
}

export function formatStatus(s: PairStatus): string {
  const pct = s.spareBlocksTotal ? ((100 * s.spareBlocksUsed) / s.spareBlocksTotal).toFixed(2) : '0';
  const lines: Array<[string, string]> = [
    ['pair', s.name],
    ['uuid', s.uuid],
    ['main', s.main],
    ['spare', s.spare],
    ['block size', `${s.blockSize} bytes`],
    ['size', `${formatBytes(s.sizeBytes)} (${s.sizeBytes} bytes)`],
    ['remapped', `${s.remappedBlocks} blocks${s.remappedBlocks ? ` (${Object.entries(s.remapsByReason).map(([r, n]) => `${r} ${n}`).join(', ')})` : ''}`],
    ['pending', `${s.pendingBlocks} blocks`],
    ['spare pool', `${s.spareBlocksUsed} of ${s.spareBlocksTotal} blocks used (${pct}%)${s.retiredSpareBlocks ? `, ${s.retiredSpareBlocks} retired` : ''}${s.spareExhausted ? ', EXHAUSTED' : ''}`],
    ['mounted', s.mounted ? `yes, at ${s.mountpoint}` : 'no'],
  ];
  if (s.database !== undefined && s.database !== 'ok') lines.push(['database', `LOST: ${s.database}`]);
  if (s.counters) {
    const c = s.counters;
    lines.push(['reads', `${c.readOps} requests, ${formatBytes(c.readBytes)}, ${c.readErrors} errors (${c.uncorrectableReads} uncorrectable)`]);
    lines.push(['writes', `${c.writeOps} requests, ${formatBytes(c.writeBytes)}, ${c.writeErrors} errors`]);
    lines.push(['flushes', String(c.flushes)]);
    lines.push(['main errors', `${c.mainReadErrors} read, ${c.mainWriteErrors} write; ${c.weakReads} weak reads; ${c.spareErrors} spare errors`]);
    lines.push(['reallocations', `${c.remapEvents} since mount`]);
    lines.push(['open handles', String(s.openHandles ?? 0)]);
  }
  if (s.engine) lines.push(['engine', formatEngine(s.engine, s.negotiated)]);
  if (s.ioFlusher) lines.push(['io flusher', formatIoFlusher(s.ioFlusher)]);
  return lines.map(([k, v]) => `${k.padEnd(14)}${v}\n`).join('');
}
