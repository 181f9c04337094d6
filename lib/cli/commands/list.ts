import type { CommandModule } from 'yargs';
import { pairStatus, type PairStatus } from '../../pair/ops.js';
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
    await withStore(argv, false, (store) => {
      const daemon = liveDaemon(store);
      const pairs: PairStatus[] = store.pairs.list().map((p) => ({
        ...pairStatus(store, p),
        mounted: !!daemon,
        ...(daemon ? { mountpoint: daemon.mountpoint } : {}),
      }));
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
