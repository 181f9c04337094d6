import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../fsutil/write-atomic.js';
import { SECTOR_BYTES } from '../../format/layout.js';
import { AreaMap, formatMapfile } from '../../rescue/mapfile.js';
import { printJson, requirePair, withStore } from '../common.js';
import { refuseProtectedOutput } from '../output-guard.js';

interface Args {
  db?: string;
  name: string;
  'ddrescue-map'?: string;
  json: boolean;
}

export const exportCommand: CommandModule<object, Args> = {
  command: 'export <name>',
  describe: 'Write the known-bad sectors (-) and remapped blocks (*) as a GNU ddrescue mapfile for ddrescueview and ddrescuelog',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('ddrescue-map', { type: 'string', describe: 'the mapfile to write' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    if (!argv['ddrescue-map']) throw new UsageError('name the mapfile with --ddrescue-map');
    const file = argv['ddrescue-map'];
    await withStore(argv, false, (store) => {
      const pair = requirePair(store, argv.name);
      refuseProtectedOutput(store, 'write', file);
      const size = Math.floor(pair.mainBytes / pair.blockSize) * pair.blockSize;
      const map = new AreaMap(size, [{ pos: 0, size, status: '+' }]);
      // Remapped and pending blocks: failed areas; then the exact bad sectors on top.
      let blocks = 0;
      for (const r of store.remaps.list(pair.id)) {
        if (r.reason === 'label') continue;
        map.set(r.mainBlock * pair.blockSize, pair.blockSize, '*');
        blocks++;
      }
      const bad = store.badSectors.list(pair.id);
      for (const s of bad) map.set(s * SECTOR_BYTES, SECTOR_BYTES, '-');
      writeFileAtomic(file, formatMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, areas: map.areas }, `remapfs export of pair ${pair.name}`));
      if (argv.json) return printJson({ version: 1, pair: pair.name, mapfile: file, badSectors: bad.length, remappedOrPendingBlocks: blocks });
      process.stdout.write(`wrote ${file}: ${bad.length} bad sectors (-), ${blocks} remapped or pending blocks (*)\n`);
    });
  },
};
