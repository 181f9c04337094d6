/**
 * Creating a pair (remapfs init): the checks on the two devices, the
 * database row and the five metadata slots (in one transaction: a refusal
 * leaves no row), then the main's label (identity.ts).
 *
 * The caller holds the lock on both devices (planPair's paths) throughout, so
 * a second init of the same devices (from any database) waits, then finds the
 * label and slots this one wrote. Interrupted imports are removed first
 * (discovery/import-steps.ts); one in progress keeps its name.
 */
import * as crypto from 'crypto';
import { type DeviceIdentity, FileDevice, identify } from '../block/file-device.js';
import type { DeviceLock } from '../block/device-lock.js';
import { RemapfsError } from '../errors.js';
import { spareLayout, slotBytesFor, SLOT_COUNT } from '../format/layout.js';
import { findForeignMetadata } from '../meta/locate.js';
import { identityOf } from '../meta/reconcile.js';
import { SlotSet } from '../meta/slots.js';
import { MetaState } from '../meta/state.js';
import { checkDevicesFree, checkDistinct } from '../discovery/importer.js';
import { removeInterrupted } from '../discovery/import-steps.js';
import { runNow } from '../discovery/steps.js';
import { readLabel } from '../discovery/label.js';
import { hardwareId } from '../discovery/hardware.js';
import type { PairRecord, Store } from '../store/db.js';
import { labelMain } from './identity.js';
import { recordFileIds } from '../discovery/file-ids.js';

export interface PairPlan {
  name: string;
  blockSize: number;
  main: DeviceIdentity;
  spare: DeviceIdentity;
  /** Spare blocks in the pool (one of them will hold the main's label block). */
  poolBlocks: number;
}

/** Identifies the devices and checks that they can make a pair (name and block size already checked). */
export function planPair(name: string, mainPath: string, sparePath: string, blockSize: number, formatBytes: (n: number) => string): PairPlan {
  const main = identify(mainPath);
  const spare = identify(sparePath);
  checkDistinct('init', name, main, spare);
  if (main.sizeBytes < blockSize) throw new RemapfsError('init', name, `main ${main.realPath} is smaller than one block (${main.sizeBytes} bytes)`);
  const layout = spareLayout(spare.sizeBytes, blockSize);
  if (layout.poolBlocks === 0) {
    const needed = SLOT_COUNT * slotBytesFor(layout.spareBlocks, blockSize) + blockSize;
    throw new RemapfsError('init', name, `spare ${spare.realPath} is too small (${formatBytes(spare.sizeBytes)}): its metadata slots leave no spare block`, `use a spare of at least ${formatBytes(needed)}`);
  }
  return { name, blockSize, main, spare, poolBlocks: layout.poolBlocks };
}

export interface Created {
  pair: PairRecord;
  /** Why the main could not be labelled (the pair works; discovery will not recognise its main). */
  labelError?: unknown;
}

/** Records the pair and writes its slots (refusing another pair's label or metadata unless `force`), then labels the main. */
export function createPair(store: Store, plan: PairPlan, force: boolean, lock: DeviceLock): Created {
  const { name, main, spare, blockSize } = plan;
  runNow(removeInterrupted(store));
  const pair = store.transaction(() => {
    const importing = store.pairs.claims(name).find((c) => c.importPid !== null);
    if (importing) throw new RemapfsError('init', name, `a pair with this name is being imported by pid ${importing.importPid}`, 'wait until that import is done, or choose another name');
    if (store.pairs.get(name)) throw new RemapfsError('init', name, 'a pair with this name already exists');
    checkDevicesFree(store, name, main, spare);
    const rec = store.pairs.insert({
      name,
      uuid: crypto.randomUUID(),
      mainPath: main.realPath,
      sparePath: spare.realPath,
      blockSize,
      mainBytes: main.sizeBytes,
      spareBytes: spare.sizeBytes,
      createdAt: Date.now(),
      metaSeq: 1,
      spareHwid: hardwareId(spare.realPath) ?? null,
    });
    checkMainUnlabelled(rec, force);
    writeInitialSlots(rec, force);
    recordFileIds(store, rec);
    return rec;
  });
  try {
    labelMain(store, pair, lock);
  } catch (err) {
    return { pair, labelError: err };
  }
  return { pair };
}

/**
 * Refuses a main that carries another pair's label (it belongs to a pair made elsewhere), and one that cannot be
 * opened for writing, exclusively for a block device (a mounted file system on it: EBUSY), as serving it would.
 */
function checkMainUnlabelled(pair: PairRecord, force: boolean): void {
  const dev = FileDevice.open(pair.mainPath, { mode: 'buffered' });
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
