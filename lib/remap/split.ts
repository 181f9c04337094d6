/**
 * Range splitting (pure): a byte range of the virtual device becomes runs, each
 * a contiguous byte range on one device. Consecutive unremapped blocks form one
 * main run; remapped blocks whose spare blocks are consecutive form one spare
 * run. The output arrays are reused between calls, so the I/O path allocates
 * nothing here.
 */

export const TARGET_MAIN = 0;
export const TARGET_SPARE = 1;

export interface SpareLookup {
  /** Number of remapped blocks; 0 lets the splitter skip lookups. */
  readonly remappedCount: number;
  /** Spare block holding `mainBlock`, or -1 when it is not remapped. */
  spareBlockOf(mainBlock: number): number;
}

export class RunList {
  count = 0;
  target: Uint8Array;
  /** Offset of the run inside the request buffer. */
  bufOffset: Float64Array;
  byteLength: Float64Array;
  /** Byte offset on the target device. */
  deviceOffset: Float64Array;

  constructor(capacity = 64) {
    this.target = new Uint8Array(capacity);
    this.bufOffset = new Float64Array(capacity);
    this.byteLength = new Float64Array(capacity);
    this.deviceOffset = new Float64Array(capacity);
  }

  /** Plain objects, for tests and messages. */
  toArray(): Array<{ target: 'main' | 'spare'; bufOffset: number; byteLength: number; deviceOffset: number }> {
    const out = [];
    for (let i = 0; i < this.count; i++) {
      out.push({
        target: this.target[i] === TARGET_MAIN ? ('main' as const) : ('spare' as const),
        bufOffset: this.bufOffset[i] as number,
        byteLength: this.byteLength[i] as number,
        deviceOffset: this.deviceOffset[i] as number,
      });
    }
    return out;
  }

  ensureCapacity(runs: number): void {
    if (runs <= this.target.length) return;
    const cap = Math.max(runs, this.target.length * 2);
    const grow = <T extends Uint8Array | Float64Array>(old: T, fresh: T): T => {
      fresh.set(old);
      return fresh;
    };
    this.target = grow(this.target, new Uint8Array(cap));
    this.bufOffset = grow(this.bufOffset, new Float64Array(cap));
    this.byteLength = grow(this.byteLength, new Float64Array(cap));
    this.deviceOffset = grow(this.deviceOffset, new Float64Array(cap));
  }
}

/** Fills `out` with the runs of [byteOffset, byteOffset + byteLength); returns the run count. */
export function splitRange(byteOffset: number, byteLength: number, blockSize: number, lookup: SpareLookup, out: RunList): number {
  out.count = 0;
  if (byteLength <= 0) return 0;
  if (lookup.remappedCount === 0) {
    out.target[0] = TARGET_MAIN;
    out.bufOffset[0] = 0;
    out.byteLength[0] = byteLength;
    out.deviceOffset[0] = byteOffset;
    out.count = 1;
    return 1;
  }
  const endByte = byteOffset + byteLength;
  const firstBlock = Math.floor(byteOffset / blockSize);
  const lastBlock = Math.floor((endByte - 1) / blockSize);
  out.ensureCapacity(lastBlock - firstBlock + 1);
  let pos = byteOffset;
  let n = 0;
  for (let block = firstBlock; block <= lastBlock; block++) {
    const blockStart = block * blockSize;
    const segEnd = Math.min(endByte, blockStart + blockSize);
    const spareBlock = lookup.spareBlockOf(block);
    const target = spareBlock < 0 ? TARGET_MAIN : TARGET_SPARE;
    const deviceOffset = spareBlock < 0 ? pos : spareBlock * blockSize + (pos - blockStart);
    const len = segEnd - pos;
    const prev = n - 1;
    if (n > 0 && out.target[prev] === target && (out.deviceOffset[prev] as number) + (out.byteLength[prev] as number) === deviceOffset) {
      out.byteLength[prev] = (out.byteLength[prev] as number) + len;
    } else {
      out.target[n] = target;
      out.bufOffset[n] = pos - byteOffset;
      out.byteLength[n] = len;
      out.deviceOffset[n] = deviceOffset;
      n++;
    }
    pos = segEnd;
  }
  out.count = n;
  return n;
}

/**
 * Calls `fn` for each block piece of the byte range that `part` holds at
 * `byteOffset` (pure): the block, the piece of `part`, and its byte range
 * [pos, segEnd) on the device.
 */
export function eachBlock(part: Buffer, byteOffset: number, blockSize: number, fn: (block: number, seg: Buffer, pos: number, segEnd: number) => void): void {
  const end = byteOffset + part.length;
  for (let pos = byteOffset; pos < end; ) {
    const block = Math.floor(pos / blockSize);
    const segEnd = Math.min(end, (block + 1) * blockSize);
    fn(block, part.subarray(pos - byteOffset, segEnd - byteOffset), pos, segEnd);
    pos = segEnd;
  }
}
