/**
 * EvacTracking: a BlockDevice over the pair's RemapDevice that records which
 * blocks are written, so that an evacuation copying the device can copy them
 * again (lib/rescue/evacuate.ts, catch-up rounds). The daemon stacks it over
 * the served file only while an evacuation copies, and removes it after.
 *
 * While it is stacked the device's writes must all come through JS: stacking
 * turns writesSlow on (a native engine then hands every write up) and
 * remove() turns it off. A block is recorded before the write is tried, so a
 * failed write is copied again too.
 */
import type { BlockDevice } from '../block/device.js';

/** The device under the tracking: a RemapDevice. */
export interface TrackedDevice extends BlockDevice {
  readonly blockSize: number;
  setWritesSlow(on: boolean): void;
}

export class EvacTracking implements BlockDevice {
  readonly inner: TrackedDevice;
  private readonly written = new Set<number>();
  private removed = false;

  constructor(inner: TrackedDevice) {
    this.inner = inner;
    inner.setWritesSlow(true);
  }

  get name(): string {
    return this.inner.name;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  get blockSize(): number {
    return this.inner.blockSize;
  }

  read(buf: Buffer, byteOffset: number): void {
    this.inner.read(buf, byteOffset);
  }

  write(buf: Buffer, byteOffset: number): void {
    if (buf.length > 0) {
      const bs = this.inner.blockSize;
      const last = Math.floor((byteOffset + buf.length - 1) / bs);
      for (let b = Math.floor(byteOffset / bs); b <= last; b++) this.written.add(b);
    }
    this.inner.write(buf, byteOffset);
  }

  flush(): void {
    this.inner.flush();
  }

  close(): void {
    this.inner.close();
  }

  /** The blocks written since the last take (or since stacking), ascending; forgets them. */
  take(): number[] {
    const blocks = [...this.written].sort((a, b) => a - b);
    this.written.clear();
    return blocks;
  }

  /** Ends the tracking: writes may take the fast path again. Idempotent. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.written.clear();
    this.inner.setWritesSlow(false);
  }
}
