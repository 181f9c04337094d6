/** Marking lists of known-bad sectors (badblocks output, ddrescue mapfiles) on a pair. */
import { SECTOR_BYTES } from '../format/layout.js';
import { RemapfsError } from '../errors.js';
import type { RemapDevice } from '../remap/remap-device.js';

export interface ImportBadResult {
  sectors: number;
  blocks: number;
  remapped: number;
  pending: number;
  already: number;
}

/**
 * Groups sectors by block and marks each block (see RemapDevice.importBadSectors). Every block that is not
 * remapped yet may need a spare block (it does when it still reads), so a list that needs more than the pool has
 * free is refused before any block is marked: a list that marks the whole device bad fails at once, with one line,
 * instead of using up the pool block by block and failing half done.
 */
export function importBadSectors(dev: RemapDevice, sectors: readonly number[]): ImportBadResult {
  const perBlock = dev.blockSize / SECTOR_BYTES;
  const total = dev.sizeBytes / SECTOR_BYTES;
  const byBlock = new Map<number, Set<number>>();
  for (const s of sectors) {
    if (!Number.isSafeInteger(s) || s < 0 || s >= total) throw new RemapfsError('import-bad', `sector ${s}`, `outside the device (sectors 0 to ${total - 1})`);
    const b = Math.floor(s / perBlock);
    let set = byBlock.get(b);
    if (!set) byBlock.set(b, (set = new Set()));
    set.add(s - b * perBlock);
  }
  let needs = 0;
  for (const b of byBlock.keys()) if (!dev.isRemapped(b)) needs++;
  const free = dev.index.freeSpareBlocks;
  if (needs > free) {
    throw new RemapfsError(
      'import-bad',
      dev.name,
      `the list names ${needs} blocks that are not remapped yet, each of which may need a spare block, but only ${free} of the spare pool's blocks are free`,
      'nothing was changed; import a shorter list, or evacuate the data to a new disk ("remapfs evacuate")',
    );
  }
  const r: ImportBadResult = { sectors: new Set(sectors).size, blocks: byBlock.size, remapped: 0, pending: 0, already: 0 };
  for (const [b, set] of [...byBlock].sort((x, y) => x[0] - y[0])) r[dev.importBadSectors(b, set)]++;
  dev.flush();
  return r;
}
