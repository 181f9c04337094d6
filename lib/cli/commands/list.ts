import type { CommandModule } from 'yargs';
import { pairStatus, type PairStatus } from '../../pair/ops.js';
import { request } from '../../daemon/control.js';
import { RemapfsError } from '../../errors.js';
import { toRequest } from '../../pair/operations.js';
import type { PairRecord, Store } from '../../store/db.js';
import { formatBytes, liveDaemon, printJson, withStore } from '../common.js';

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
      const records = store.pairs.list();
      const served = await servedAtAll(store, records);
      const pairs: PairStatus[] = records.map((p) => {
        const at = served?.get(p.name);
        return { ...pairStatus(store, p), mounted: at !== undefined, ...(at !== undefined ? { mountpoint: at } : {}) };
      });
      if (argv.json) return printJson({ version: 1, pairs });
      if (pairs.length === 0) {
        process.stdout.write('no pairs (create one with "remapfs init")\n');
        return;
      }
      const rows = [['NAME', 'UUID', 'SIZE', 'BLOCK', 'REMAPPED', 'SPARE USED', 'MOUNTED']];
      for (const p of pairs) {
        rows.push([p.name, p.uuid, formatBytes(p.sizeBytes), String(p.blockSize), String(p.remappedBlocks), `${p.spareBlocksUsed}/${p.spareBlocksTotal}`, p.mountpoint ?? (served ? '-' : '?')]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
      for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n');
    });
  },
};

/** How long list waits for each answer of the daemon. */
const ANSWER_MS = 5000;

/**
 * Where this database's running daemon serves each pair (absent: it does not serve it), asking it about each; with no
 * daemon, an empty map. Undefined when the daemon does not answer (starting, stopping, or stuck on a slow disk): then
 * nobody knows, which the table shows as "?", with one warning.
 */
async function servedAtAll(store: Store, pairs: readonly PairRecord[]): Promise<Map<string, string> | undefined> {
  const daemon = liveDaemon(store);
  const out = new Map<string, string>();
  if (!daemon) return out;
  for (const p of pairs) {
    try {
      const s = (await request(daemon.socket, toRequest('status', p.name, {}), ANSWER_MS)) as PairStatus;
      if (s.mounted && typeof s.mountpoint === 'string') out.set(p.name, s.mountpoint);
    } catch (err) {
      if (!(err instanceof RemapfsError && err.op === 'contact daemon')) throw err;
      process.stderr.write(`remapfs: warning: the daemon of ${daemon.mountpoint} (pid ${daemon.pid}) does not answer (${err.causeText}): where pairs are mounted is not known\n`);
      return undefined;
    }
  }
  return out;
}
