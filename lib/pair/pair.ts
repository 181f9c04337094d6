/**
 * A pair brought to life: its devices opened, its remap index loaded from the
 * store, and a RemapDevice serving it. Used by the daemon and by CLI commands
 * that work on an unmounted pair.
 */
import { FileDevice, type OpenMode, identify } from '../block/file-device.js';
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
  const layout = spareLayout(pair.spareBytes, pair.blockSize);
  const index = new RemapIndex(Math.floor(pair.mainBytes / pair.blockSize), layout, state.entryCount);
  state.forEachRaw((mainBlock, spareBlock, _t, _lost, stateCode) => {
    if (stateCode === 3) index.retire(spareBlock);
    else if (stateCode === 1) index.load(mainBlock, spareBlock);
    else if (stateCode === 2) index.markPending(mainBlock);
  });
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
  const mode = opts.mode ?? 'auto';
  const log = opts.log ?? (() => undefined);
  checkDeviceSize('main', pair.name, pair.mainPath, pair.mainBytes);
  checkDeviceSize('spare', pair.name, pair.sparePath, pair.spareBytes);
  // Lock before reading anything: what is read below decides, so nobody else may be writing.
  const ownLock = opts.lock ? undefined : lockPair(pair, 'open', opts.lockWaitMs ?? 0, (why) => log(`remapfs: ${pair.name}: waiting: ${why}`));
  let main: FileDevice | undefined;
  let spare: FileDevice | undefined;
  try {
    main = FileDevice.open(pair.mainPath, { mode });
    checkMainIdentity(pair, main);
    spare = FileDevice.open(pair.sparePath, { mode });
    const slots = new SlotSet(spare, spareLayout(pair.spareBytes, pair.blockSize));
    const opened = (opts.adopted && adoptedReconciliation(store, pair, slots, opts.adopted)) || reconcile(store, pair, slots, { write: true, log });
    const index = indexFromState(pair, opened.state);
    const journal = new MetaJournal(store, pair, opened.state, slots, log);
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
    return { record: pair, device, index, journal, opened, main, spare, close };
  } catch (err) {
    main?.close();
    spare?.close();
    ownLock?.release();
    throw err;
  }
}

/** Refuses a main that is not this pair's: wrong label, or other hardware than was paired. */
export function checkMainIdentity(pair: PairRecord, main: FileDevice): void {
  if (pair.mainLabel) {
    const label = readLabel(main);
    if (!label || label.uuid !== pair.uuid) {
      const found = label ? `the label of pair ${label.name} (uuid ${label.uuid})` : 'no remapfs label';
      throw new RemapfsError('open main of pair', pair.name, `${pair.mainPath} carries ${found}, not this pair's`, 'wrong disk? "remapfs discover" finds where the pair is now');
    }
  }
  const hw = hardwareId(pair.mainPath);
  if (pair.mainHwid && hw && hw !== pair.mainHwid) {
    throw new RemapfsError('open main of pair', pair.name, `${pair.mainPath} is ${hw}, but the pair was made with ${pair.mainHwid}`, 'a clone of the disk? serve the original');
  }
}

function checkDeviceSize(role: string, name: string, devicePath: string, expectedBytes: number): void {
  let actual: number;
  try {
    actual = identify(devicePath).sizeBytes;
  } catch (err) {
    throw new RemapfsError(`open ${role} of pair`, name, err instanceof RemapfsError ? err.message : err, 'is the device attached? "remapfs discover" finds moved pairs');
  }
  if (actual < expectedBytes) {
    throw new RemapfsError(`open ${role} of pair`, name, `${devicePath} has ${actual} bytes but the pair was created with ${expectedBytes}`, 'wrong device?');
  }
}
