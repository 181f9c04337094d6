import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { opsFor, parseCount, printJson, requirePair, withStore } from '../common.js';

interface Args {
  db?: string;
  name: string;
  sectors: string[];
  json: boolean;
}

export const remapCommand: CommandModule<object, Args> = {
  command: 'remap <name> <sectors..>',
  describe: 'Remap the blocks holding these 512-byte sectors to the spare, copying their data first',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('sectors', { type: 'string', array: true, demandOption: true, describe: '512-byte LBAs, as in SMART' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const sectors = argv.sectors.map((s) => parseCount('sector', s));
    if (sectors.length === 0) throw new UsageError('name at least one sector');
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      const results = await opsFor(store, pair).remap({ sectors });
      if (argv.json) return printJson({ version: 1, remaps: results });
      for (const r of results) {
        const what = r.already ? 'already remapped to' : 'remapped to';
        const lost = r.lostSectors ? ` (${r.lostSectors} unreadable sectors zero-filled)` : '';
        process.stdout.write(`sector ${r.sector}: block ${r.mainBlock} ${what} spare block ${r.spareBlock}${lost}\n`);
      }
    });
  },
};
