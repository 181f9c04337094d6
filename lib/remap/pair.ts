/**
 * A pair brought to life: its devices opened, its remap index loaded from the
 * store, and a RemapDevice serving it. Used by the daemon and by CLI commands
 * that work on an unmounted pair.
 */
import { FileDevice, OpenMode, identify } from '../block/file-device';
import { RemapfsError } from '../errors';
import { PairRecord, RemapRecord, Store } from '../store/db';
import { RemapIndex } from './index-table';
import { spareLayout } from './layout';
import { RemapDevice, RemapJournal } from './remap-device';

export class SqliteJournal implements RemapJournal {
  constructor(private readonly store: Store, private readonly pairId: number) {}

  commitRemap(entry: RemapRecord): void {
    this.store.transaction(() => this.store.putRemap(this.pairId, entry));
  }

  commitRetired(spareBlock: number): void {
    this.store.transaction(() => this.store.putRetired(this.pairId, spareBlock, Date.now()));
  }
}

export interface PairRuntime {
  record: PairRecord;
  device: RemapDevice;
  index: RemapIndex;
  close(): void;
}

/** Builds the in-memory index of a pair from the store. */
export function loadIndex(store: Store, pair: PairRecord): RemapIndex {
  const layout = spareLayout(pair.spareBytes, pair.blockSize);
  const index = new RemapIndex(Math.floor(pair.mainBytes / pair.blockSize), layout);
  for (const spareBlock of store.retired(pair.id)) index.retire(spareBlock);
  for (const r of store.remaps(pair.id)) {
    if (r.state === 'remapped' && r.spareBlock >= 0) index.set(r.mainBlock, r.spareBlock);
  }
  return index;
}

export function openPair(store: Store, pair: PairRecord, mode: OpenMode = 'auto'): PairRuntime {
  checkDeviceSize('main', pair.name, pair.mainPath, pair.mainBytes);
  checkDeviceSize('spare', pair.name, pair.sparePath, pair.spareBytes);
  const index = loadIndex(store, pair);
  const main = FileDevice.open(pair.mainPath, { mode });
  let spare: FileDevice;
  try {
    spare = FileDevice.open(pair.sparePath, { mode });
  } catch (err) {
    main.close();
    throw err;
  }
  const device = new RemapDevice(pair.name, main, spare, pair.blockSize, index, new SqliteJournal(store, pair.id));
  return { record: pair, device, index, close: () => device.close() };
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
