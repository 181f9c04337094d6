import type { CommandModule } from 'yargs';
import { pairStatus, type PairStatus } from '../../pair/ops.js';
import type { PairRecord, Store } from '../../store/db.js';
import { formatBytes, liveDaemon, opsFor, printJson, withStore } from '../common.js';

interface Args {
  db?: string;
  json: boolean;
}

export const listCommand: CommandModule<object, Args> = {
  command: 'list',
  describe: 'List the pairs in the database',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
  handler: async (argv) => {
    await withStore(argv, false, async (store) => {
      const daemon = liveDaemon(store);
      const pairs: PairStatus[] = [];
      for (const p of store.pairs.list()) {
        // A running daemon may not serve every pair (a device missing or busy, a pair made after it started): ask it.
        const served = daemon ? await servedAt(store, p) : undefined;
        pairs.push({ ...pairStatus(store, p), mounted: served !== undefined, ...(served ? { mountpoint: served } : {}) });
      }
      if (argv.json) return printJson({ version: 1, pairs });
      if (pairs.length === 0) {
        process.stdout.write('no pairs (create one with "remapfs init")\n');
        return;
      }
      const rows = [['NAME', 'UUID', 'SIZE', 'BLOCK', 'REMAPPED', 'SPARE USED', 'MOUNTED']];
      for (const p of pairs) {
        rows.push([p.name, p.uuid, formatBytes(p.sizeBytes), String(p.blockSize), String(p.remappedBlocks), `${p.spareBlocksUsed}/${p.spareBlocksTotal}`, p.mountpoint ?? '-']);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
      for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n');
    });
  },
};

/** Where the running daemon serves `pair`, or undefined when it does not serve it. */
async function servedAt(store: Store, pair: PairRecord): Promise<string | undefined> {
  const s = await opsFor(store, pair).status({});
  return s.mounted ? s.mountpoint : undefined;
}
