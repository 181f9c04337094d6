import type { CommandModule } from 'yargs';
import { RemapfsError, UsageError } from '../../errors.js';
import { SECTOR_BYTES } from '../../format/layout.js';
import { parseBadblocks, parseMapfile, sectorsOf } from '../../rescue/mapfile.js';
import { readTextBounded } from '../../fsutil/read-bounded.js';
import { opsFor, printJson, requirePair, withStore } from '../common.js';
import { countOption } from '../options.js';

interface Args {
  db?: string;
  name: string;
  badblocks?: string;
  'ddrescue-map'?: string;
  'block-size': number;
  json: boolean;
}

export const importBadCommand: CommandModule<object, Args> = {
  command: 'import-bad <name>',
  describe: 'Mark known-bad sectors from a badblocks list or a ddrescue mapfile: copied to the spare if still readable, else pending',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('badblocks', { type: 'string', describe: 'output of e2fsprogs badblocks (one block number per line)' })
      .option('ddrescue-map', { type: 'string', describe: 'a GNU ddrescue mapfile; its bad-sector (-) areas are imported' })
      .option('block-size', countOption('block-size', 'block size of the badblocks list (badblocks -b)', 1024, (n) => (n > 0 && n % 512 === 0 ? undefined : 'must be a positive multiple of 512')))
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (argv) => {
    if (!!argv.badblocks === !!argv['ddrescue-map']) throw new UsageError('give exactly one of --badblocks and --ddrescue-map');
    const file = (argv.badblocks ?? argv['ddrescue-map']) as string;
    const text = readTextBounded(file, 'read');
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      // Parsed against the device, so that neither a block number nor a mapfile area past its end can make a list
      // larger than the device (an area of 2^52 bytes would be 2^43 sectors).
      const size = Math.floor(pair.mainBytes / pair.blockSize) * pair.blockSize;
      let sectors: number[];
      try {
        if (argv.badblocks) sectors = parseBadblocks(text, argv['block-size'], size / SECTOR_BYTES);
        else {
          const areas = parseMapfile(text).areas;
          const end = areas.reduce((e, a) => Math.max(e, a.pos + a.size), 0);
          if (end > size) throw new Error(`its areas cover ${end} bytes, but pair ${pair.name} has ${size}`);
          sectors = sectorsOf(areas, ['-']);
        }
      } catch (err) {
        if (err instanceof UsageError) throw err;
        throw new RemapfsError('parse', file, err instanceof Error ? err.message : String(err));
      }
      const r = await opsFor(store, pair)['import-bad']({ sectors });
      if (argv.json) return printJson({ version: 1, pair: pair.name, ...r });
      process.stdout.write(`${r.sectors} bad sectors in ${r.blocks} blocks: ${r.remapped} copied to the spare, ${r.pending} unreadable (pending), ${r.already} already remapped\n`);
    });
  },
};
