import type { CommandModule } from 'yargs';
import { writeFileAtomic } from '../../fsutil/write-atomic';
import { mapInputOf, renderBar, renderSvg } from '../../health/map';
import { parseCount, requirePair, withStore } from '../common';

interface Args {
  db?: string;
  name: string;
  svg?: string;
  columns: string;
}

export const mapCommand: CommandModule<object, Args> = {
  command: 'map <name>',
  describe: 'Draw the device as a grid of cells coloured by state (ok, remapped, pending, slow, unscanned)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('svg', { type: 'string', describe: 'write an SVG picture to this file (default: a text bar on stdout)' })
      .option('columns', { type: 'string', default: '64', describe: 'cells per row in the SVG' }) as never,
  handler: async (argv) => {
    const columns = parseCount('--columns', argv.columns);
    await withStore(argv, false, (store) => {
      const pair = requirePair(store, argv.name);
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
