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

/** Groups sectors by block and marks each block (see RemapDevice.importBadSectors). */
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
  const r: ImportBadResult = { sectors: new Set(sectors).size, blocks: byBlock.size, remapped: 0, pending: 0, already: 0 };
  for (const [b, set] of [...byBlock].sort((x, y) => x[0] - y[0])) r[dev.importBadSectors(b, set)]++;
  dev.flush();
  return r;
}
