/** Writing the main's label at init (see format/label-codec.ts for why the last block is free to hold it). */
import { hardwareId } from '../discovery/hardware.js';
import { encodeLabel, labelBlockOf } from '../format/label-codec.js';
import { openPair } from './pair.js';
import type { DeviceLock } from '../block/device-lock.js';
import type { PairRecord, Store } from '../store/db.js';

/**
 * Remaps the last block of main to the spare (its data copied and persisted
 * first), then writes the label into the freed physical block and flushes.
 */
export function labelMain(store: Store, pair: PairRecord, lock: DeviceLock): void {
  const rt = openPair(store, pair, { lock });
  try {
    const block = labelBlockOf(pair.mainBytes, pair.blockSize);
    rt.device.remapBlock(block, 'label');
    rt.device.flush();
    rt.main.write(encodeLabel({ uuid: pair.uuid, name: pair.name, blockSize: pair.blockSize, mainBytes: pair.mainBytes, labelBlock: block, createdAt: Date.now() }), block * pair.blockSize);
    rt.main.flush();
    store.pairs.setMainLabel(pair.id, hardwareId(pair.mainPath) ?? null);
  } finally {
    rt.close();
  }
}
