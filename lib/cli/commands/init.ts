import * as crypto from 'crypto';
import type { CommandModule } from 'yargs';
import { identify } from '../../block/file-device';
import { RemapfsError, UsageError } from '../../errors';
import { spareLayout, validateBlockSize, slotBytesFor, SLOT_COUNT } from '../../remap/layout';
import { formatBytes, parseCount, withStore } from '../common';

interface Args {
  db?: string;
  name: string;
  main: string;
  spare: string;
  'block-size': string;
}

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const initCommand: CommandModule<object, Args> = {
  command: 'init <name>',
  describe: 'Pair a main device with a spare device and print the pair UUID',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'pair name; also the virtual file name' })
      .option('main', { type: 'string', demandOption: true, describe: 'failing disk or image (block device or file)' })
      .option('spare', { type: 'string', demandOption: true, describe: 'spare device or image' })
      .option('block-size', { type: 'string', default: '4096', describe: 'remap unit in bytes, power of two from 512 to 65536' }) as never,
  handler: async (argv) => {
    const name = String(argv.name);
    if (!NAME_PATTERN.test(name)) {
      throw new UsageError(`invalid pair name "${name}": use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    }
    const blockSize = parseCount('--block-size', argv['block-size']);
    const bad = validateBlockSize(blockSize);
    if (bad) throw new UsageError(bad);
    const main = identify(argv.main);
    const spare = identify(argv.spare);
    if (main.key === spare.key) throw new RemapfsError('init', name, `main and spare are the same device (${main.realPath})`, 'pair two different devices');
    if (main.sizeBytes < blockSize) throw new RemapfsError('init', name, `main ${main.realPath} is smaller than one block (${main.sizeBytes} bytes)`);
    const layout = spareLayout(spare.sizeBytes, blockSize);
    if (layout.poolBlocks === 0) {
      const needed = SLOT_COUNT * slotBytesFor(layout.spareBlocks, blockSize) + blockSize;
      throw new RemapfsError('init', name, `spare ${spare.realPath} is too small (${formatBytes(spare.sizeBytes)}): its metadata slots leave no spare block`, `use a spare of at least ${formatBytes(needed)}`);
    }
    await withStore(argv, true, (store) => {
      store.transaction(() => {
        if (store.getPair(name)) throw new RemapfsError('init', name, 'a pair with this name already exists');
        for (const p of store.listPairs()) {
          for (const [role, dev] of [['main', main], ['spare', spare]] as const) {
            for (const theirs of [p.mainPath, p.sparePath]) {
              if (theirs === dev.realPath || safeKey(theirs) === dev.key) {
                throw new RemapfsError('init', name, `${role} ${dev.realPath} is already used by pair ${p.name}`, 'a device can belong to one pair only');
              }
            }
          }
        }
        const uuid = crypto.randomUUID();
        store.insertPair({
          name,
          uuid,
          mainPath: main.realPath,
          sparePath: spare.realPath,
          blockSize,
          mainBytes: main.sizeBytes,
          spareBytes: spare.sizeBytes,
          createdAt: Date.now(),
        });
        process.stdout.write(`${uuid}\n`);
        process.stderr.write(
          `remapfs: pair ${name}: main ${main.realPath} (${formatBytes(main.sizeBytes)}), spare ${spare.realPath} with ${layout.poolBlocks} spare blocks of ${blockSize} bytes\n`,
        );
      });
    });
  },
};

function safeKey(p: string): string | undefined {
  try {
    return identify(p).key;
  } catch {
    return undefined;
  }
}
