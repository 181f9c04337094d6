import type { CommandModule } from 'yargs';
import { writeFileAtomic } from '../../fsutil/write-atomic.js';
import { mapInputOf, renderBar, renderSvg } from '../../health/map.js';
import { requirePair, withStore } from '../common.js';
import { countOption } from '../options.js';
import { refuseProtectedOutput } from '../output-guard.js';

interface Args {
  db?: string;
  name: string;
  svg?: string;
  columns: number;
}

export const mapCommand: CommandModule<object, Args> = {
  command: 'map <name>',
  describe: 'Draw the device as a grid of cells coloured by state (ok, remapped, pending, slow, unscanned)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('svg', { type: 'string', describe: 'write an SVG picture to this file (default: a text bar on stdout)' })
      .option('columns', countOption('columns', 'cells per row in the SVG', 64)) as never,
  handler: async (argv) => {
    const columns = argv.columns;
    await withStore(argv, false, (store) => {
      const pair = requirePair(store, argv.name);
      if (argv.svg) refuseProtectedOutput(store, 'write', argv.svg);
      const input = mapInputOf(store, pair);
      if (!argv.svg) {
        process.stdout.write(`[${renderBar(input, 64)}]\n`);
        return;
      }
      writeFileAtomic(argv.svg, renderSvg(`remapfs pair ${pair.name}`, input, { columns: Math.max(1, columns) }));
      process.stderr.write(`remapfs: wrote ${argv.svg}\n`);
    });
  },
};
