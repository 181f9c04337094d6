/**
 * A pair brought to life: its devices opened, its remap index loaded from the
 * store, and a RemapDevice serving it. Used by the daemon and by CLI commands
 * that work on an unmounted pair.
 *
 * One implementation in steps (discovery/steps.ts): openPairSteps yields while
 * it builds the index, INDEX_CHUNK entries per step, so a daemon opening a
 * hot-plugged pair with a million entries lets its event loop turn; openPair
 * runs the steps back to back. Nothing uses the pair until it is returned;
 * closing the steps early closes its devices and releases its lock.
 */
import { type DeviceIdentity, FileDevice, type OpenMode, identify } from '../block/file-device.js';
import { checkDistinct } from '../discovery/importer.js';
import { DeviceLock } from '../block/device-lock.js';
import { RemapfsError } from '../errors.js';
import type { PairRecord, Store } from '../store/db.js';
import { RemapIndex } from '../remap/index-table.js';
import { spareLayout } from '../format/layout.js';
import { RemapDevice } from '../remap/remap-device.js';
import type { MetaState } from '../meta/state.js';
import { MetaJournal } from '../meta/journal.js';
import { adoptedReconciliation, reconcile, type Reconciliation } from '../meta/reconcile.js';
import type { AdoptedTable } from '../meta/locate.js';
import { SlotSet } from '../meta/slots.js';
import { readLabel } from '../discovery/label.js';
import { hardwareId } from '../discovery/hardware.js';
import { runNow, type Steps } from '../discovery/steps.js';

/** Entries loaded into the index per step (some tens of milliseconds). */
const INDEX_CHUNK = 131072;

export interface PairRuntime {
  record: PairRecord;
  device: RemapDevice;
  index: RemapIndex;
  journal: MetaJournal;
  /** What opening found and repaired in the metadata. */
  opened: Reconciliation;
  /** The main device itself (for writing its label), and the spare (a native data path uses their descriptors). */
  main: FileDevice;
  spare: FileDevice;
  /** Releases the devices and, when openPair took it, the lock. */
  close(): void;
}

/** Builds the in-memory index of a pair from the table in force (state codes of docs/format.md). */
export function indexFromState(pair: PairRecord, state: MetaState): RemapIndex {
  return runNow(indexSteps(pair, state));
}

function* indexSteps(pair: PairRecord, state: MetaState): Steps<RemapIndex> {
  const layout = spareLayout(pair.spareBytes, pair.blockSize);
  const index = new RemapIndex(Math.floor(pair.mainBytes / pair.blockSize), layout, state.entryCount);
  const load = (mainBlock: number, spareBlock: number, _t: number, _lost: number, stateCode: number): void => {
    if (stateCode === 3) index.retire(spareBlock);
    else if (stateCode === 1) index.load(mainBlock, spareBlock);
    else if (stateCode === 2) index.markPending(mainBlock);
  };
  for (let from = 0; from < state.entryCount; from += INDEX_CHUNK) {
    state.forEachRaw(load, from, from + INDEX_CHUNK);
    yield 'index';
  }
  return index;
}

/**
 * Opens a pair's devices, reconciles the database with the metadata slots
 * (repairing whichever is behind or damaged, and logging it), and builds the
 * RemapDevice.
 */
export interface OpenPairOptions {
  mode?: OpenMode;
  /** Extra attempts after a failed main read. */
  readRetries?: number;
  log?: (line: string) => void;
  /** A lock on the pair's devices that the caller already holds (and keeps after close). */
  lock?: DeviceLock;
  /** Without `lock`: how long to wait for another holder of the devices (default: fail at once). */
  lockWaitMs?: number;
  /** The table the pair was just imported from (hot-plug): used without reading the slots again if it still holds. */
  adopted?: AdoptedTable;
}

/** Locks a pair's main and spare (and what backs them) for writing; see device-lock.ts. */
export function lockPair(pair: PairRecord, op: string, waitMs: number, onWait?: (why: string) => void): DeviceLock {
  return DeviceLock.acquire([pair.mainPath, pair.sparePath], { op, object: `pair ${pair.name}`, waitMs, ...(onWait ? { onWait } : {}) });
}

export function openPair(store: Store, pair: PairRecord, opts: OpenPairOptions = {}): PairRuntime {
  return runNow(openPairSteps(store, pair, opts));
}

export function* openPairSteps(store: Store, pair: PairRecord, opts: OpenPairOptions = {}): Steps<PairRuntime> {
  const mode = opts.mode ?? 'auto';
  const log = opts.log ?? (() => undefined);
  checkDistinct('open', pair.name, checkDeviceSize('main', pair.name, pair.mainPath, pair.mainBytes), checkDeviceSize('spare', pair.name, pair.sparePath, pair.spareBytes));
  // Lock before reading anything: what is read below decides, so nobody else may be writing.
  const ownLock = opts.lock ? undefined : lockPair(pair, 'open', opts.lockWaitMs ?? 0, (why) => log(`remapfs: ${pair.name}: waiting: ${why}`));
  let main: FileDevice | undefined;
  let spare: FileDevice | undefined;
  let opened = false;
  try {
    main = FileDevice.open(pair.mainPath, { mode });
    checkMainIdentity(pair, main);
    spare = FileDevice.open(pair.sparePath, { mode });
    checkSpareIsNoMain(pair, spare);
    const slots = new SlotSet(spare, spareLayout(pair.spareBytes, pair.blockSize));
    const reconciled = (opts.adopted && adoptedReconciliation(store, pair, slots, opts.adopted)) || reconcile(store, pair, slots, { write: true, log });
    yield 'reconcile';
    const index = yield* indexSteps(pair, reconciled.state);
    const journal = new MetaJournal(store, pair, reconciled.state, slots, log, reconciled.highestSeen);
    const device = new RemapDevice(pair.name, main, spare, pair.blockSize, index, journal, {
      ...(opts.readRetries !== undefined ? { readRetries: opts.readRetries } : {}),
      onEvent: (line) => log(`remapfs: ${pair.name}: ${line}`),
    });
    const close = () => {
      try {
        device.close();
      } finally {
        ownLock?.release();
      }
    };
    opened = true;
    return { record: pair, device, index, journal, opened: reconciled, main, spare, close };
  } finally {
    // A throw, or steps closed before the end.
    if (!opened) {
      main?.close();
      spare?.close();
      ownLock?.release();
    }
  }
}

/**
 * Refuses a main that is not this pair's: wrong label, or other hardware than was paired. A main
 * that carries another pair's label is refused even when this pair's was never written.
 */
export function checkMainIdentity(pair: PairRecord, main: FileDevice): void {
  const label = readLabel(main);
  if ((pair.mainLabel && !label) || (label && label.uuid !== pair.uuid)) {
    const found = label ? `the label of pair ${label.name} (uuid ${label.uuid})` : 'no remapfs label';
    throw new RemapfsError('open main of pair', pair.name, `${pair.mainPath} carries ${found}, not this pair's`, 'wrong disk? "remapfs discover" finds where the pair is now');
  }
  const hw = hardwareId(pair.mainPath);
  if (pair.mainHwid && hw && hw !== pair.mainHwid) {
    throw new RemapfsError('open main of pair', pair.name, `${pair.mainPath} is ${hw}, but the pair was made with ${pair.mainHwid}`, 'a clone of the disk? serve the original');
  }
}

/** Identifies a device of the pair and refuses one smaller than recorded. */
function checkDeviceSize(role: string, name: string, devicePath: string, expectedBytes: number): DeviceIdentity {
  let id: DeviceIdentity;
  try {
    id = identify(devicePath);
  } catch (err) {
    throw new RemapfsError(`open ${role} of pair`, name, err instanceof RemapfsError ? err.message : err, 'is the device attached? "remapfs discover" finds moved pairs');
  }
  if (id.sizeBytes < expectedBytes) {
    throw new RemapfsError(`open ${role} of pair`, name, `${devicePath} has ${id.sizeBytes} bytes but the pair was created with ${expectedBytes}`, 'wrong device?');
  }
  return id;
}

/** Refuses a spare that carries a main label (any pair's): writing slots there would overwrite a main's data. */
function checkSpareIsNoMain(pair: PairRecord, spare: FileDevice): void {
  const label = readLabel(spare);
  if (label) {
    throw new RemapfsError('open spare of pair', pair.name, `${pair.sparePath} carries the main label of pair ${label.name} (uuid ${label.uuid}): it is a main device`, 'wrong device? "remapfs discover" finds where the pair is now');
  }
}
