/**
 * Finding a main's label on a device (I/O). The label's layout and codec are
 * in lib/format/label-codec.ts. decodeLabel refuses bad bytes by returning
 * nothing; a disk error reading a block means no label there; any other
 * exception is a bug and propagates.
 */
import type { BlockDevice } from '../block/device.js';
import { isDiskError } from '../block/disk-error.js';
import { decodeLabel, labelBlockOf, LABEL_BYTES, type MainLabel } from '../format/label-codec.js';
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES } from '../format/layout.js';

/** Looks for a label at the last block for every possible block size. */
export function readLabel(dev: BlockDevice): MainLabel | undefined {
  const buf = Buffer.alloc(LABEL_BYTES);
  for (let bs = MIN_BLOCK_BYTES; bs <= MAX_BLOCK_BYTES; bs *= 2) {
    const block = labelBlockOf(dev.sizeBytes, bs);
    if (block < 0) continue;
    try {
      dev.read(buf, block * bs);
    } catch (err) {
      // An unreadable block holds no label; anything but a disk error is a bug.
      if (!isDiskError(err)) throw err;
      continue;
    }
    const l = decodeLabel(buf);
    if (l && l.blockSize === bs && l.labelBlock === block && l.mainBytes === dev.sizeBytes) return l;
  }
  return undefined;
}
