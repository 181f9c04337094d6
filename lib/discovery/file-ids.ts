/**
 * Recording the identity of a pair's image files (store device_ids, docs/format.md), which discovery later compares
 * with a file found at another path: the same file (a rename) is the device, a copy is not.
 */
import { fileId } from '../block/identify.js';
import type { PairRecord, Store } from '../store/db.js';

/** Records the identity of the image files now at the pair's paths (none for a block device). */
export function recordFileIds(store: Store, pair: Pick<PairRecord, 'id' | 'mainPath' | 'sparePath'>): void {
  store.pairs.setFileIds(pair.id, { main: fileId(pair.mainPath), spare: fileId(pair.sparePath) });
}
