import * as crypto from 'crypto';
import type { CommandModule } from 'yargs';
import { DeviceIdentity, FileDevice, identify } from '../../block/file-device';
import { DeviceLock } from '../../block/device-lock';
import { findForeignMetadata } from '../../meta/locate';
import { labelMain } from '../../pair/identity';
import { checkDevicesFree, checkDistinct } from '../../discovery/importer';
import { readLabel } from '../../discovery/label';
import { hardwareId } from '../../discovery/hardware';
import { identityOf } from '../../meta/reconcile';
import { SlotSet } from '../../meta/slots';
import { MetaState } from '../../meta/state';
import { PairRecord } from '../../store/db';
import { RemapfsError, UsageError } from '../../errors';
import { pairNameProblem } from '../../format/validate';
import { spareLayout, validateBlockSize, slotBytesFor, SLOT_COUNT } from '../../format/layout';
import { CLI_LOCK_WAIT_MS, formatBytes, withStore } from '../common';
import { countOption } from '../options';

interface Args {
  db?: string;
  name: string;
  main: string;
  spare: string;
  'block-size': number;
  force: boolean;
}

export const initCommand: CommandModule<object, Args> = {
  command: 'init <name>',
  describe: 'Pair a main device with a spare device and print the pair UUID',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'pair name; also the virtual file name' })
      .option('main', { type: 'string', demandOption: true, describe: 'failing disk or image (block device or file)' })
      .option('spare', { type: 'string', demandOption: true, describe: 'spare device or image' })
      .option('block-size', countOption('block-size', 'remap unit in bytes, power of two from 512 to 65536', 4096))
      .option('force', { type: 'boolean', default: false, describe: 'overwrite remapfs metadata of another pair found on the spare' }) as never,
  handler: async (argv) => {
    const name = String(argv.name);
    const badName = pairNameProblem(name);
    if (badName) throw new UsageError(badName);
    const blockSize = argv['block-size'];
    const bad = validateBlockSize(blockSize);
    if (bad) throw new UsageError(bad);
    const main = identify(argv.main);
    const spare = identify(argv.spare);
    checkDistinct('init', name, main, spare);
    if (main.sizeBytes < blockSize) throw new RemapfsError('init', name, `main ${main.realPath} is smaller than one block (${main.sizeBytes} bytes)`);
    const layout = spareLayout(spare.sizeBytes, blockSize);
    if (layout.poolBlocks === 0) {
      const needed = SLOT_COUNT * slotBytesFor(layout.spareBlocks, blockSize) + blockSize;
      throw new RemapfsError('init', name, `spare ${spare.realPath} is too small (${formatBytes(spare.sizeBytes)}): its metadata slots leave no spare block`, `use a spare of at least ${formatBytes(needed)}`);
    }
    // Devices first, then the database: a second init of the same devices (from any database) waits
    // here, then finds the label and slots this one wrote.
    const lock = DeviceLock.acquire([main.realPath, spare.realPath], {
      op: 'init',
      object: name,
      waitMs: CLI_LOCK_WAIT_MS,
    });
    try {
      await initLocked(argv, name, blockSize, main, spare, layout.poolBlocks, lock);
    } finally {
      lock.release();
    }
  },
};

async function initLocked(argv: Args, name: string, blockSize: number, main: DeviceIdentity, spare: DeviceIdentity, poolBlocks: number, lock: DeviceLock): Promise<void> {
  await withStore(argv, true, (store) => {
    const created = store.transaction(() => {
      if (store.pairs.get(name)) throw new RemapfsError('init', name, 'a pair with this name already exists');
      checkDevicesFree(store, name, main, spare);
      const uuid = crypto.randomUUID();
      const pair = store.pairs.insert({
        name,
        uuid,
        mainPath: main.realPath,
        sparePath: spare.realPath,
        blockSize,
        mainBytes: main.sizeBytes,
        spareBytes: spare.sizeBytes,
        createdAt: Date.now(),
        metaSeq: 1,
        spareHwid: hardwareId(spare.realPath) ?? null,
      });
      checkMainUnlabelled(pair, argv.force);
      writeInitialSlots(pair, argv.force);
      return pair;
    });
    try {
      labelMain(store, created, lock);
    } catch (err) {
      process.stderr.write(`remapfs: warning: could not label the main (${err instanceof Error ? err.message : String(err)}); discovery will not recognise it\n`);
    }
    process.stdout.write(`${created.uuid}\n`);
    process.stderr.write(
      `remapfs: pair ${name}: main ${main.realPath} (${formatBytes(main.sizeBytes)}), spare ${spare.realPath} with ${poolBlocks - 1} free spare blocks of ${blockSize} bytes\n`,
    );
  });
}

/** Refuses a main that carries another pair's label (it belongs to a pair made elsewhere). */
function checkMainUnlabelled(pair: PairRecord, force: boolean): void {
  const dev = FileDevice.open(pair.mainPath, { readOnly: true, mode: 'buffered' });
  try {
    const label = readLabel(dev);
    if (label && !force) {
      throw new RemapfsError('init', pair.name, `main ${pair.mainPath} already belongs to pair ${label.name} (uuid ${label.uuid})`, 'bring that pair back with "remapfs import" or "remapfs discover --import", or pass --force');
    }
  } finally {
    dev.close();
  }
}

/** Writes the five slots with an empty table (sequence 1); refuses to overwrite another pair's metadata. */
function writeInitialSlots(pair: PairRecord, force: boolean): void {
  const spare = FileDevice.open(pair.sparePath);
  try {
    const slots = new SlotSet(spare, spareLayout(pair.spareBytes, pair.blockSize));
    const foreign = findForeignMetadata(spare);
    if (foreign && !force) {
      throw new RemapfsError('init', pair.name, `spare ${pair.sparePath} holds remapfs metadata of pair ${foreign.name} (uuid ${foreign.uuid})`, 'bring that pair back with "remapfs import", or pass --force to overwrite it');
    }
    const failed = slots.writeAll(new MetaState(identityOf(pair), slots.layout, 1, []));
    if (failed.length) throw new RemapfsError('init', pair.name, `cannot write metadata slot(s) ${failed.join(', ')} on ${pair.sparePath}`);
  } finally {
    spare.close();
  }
}
