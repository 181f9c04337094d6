/**
 * FaultDevice: a layer that makes `next` fail like a dying disk. Listed
 * 512-byte sectors fail every read and write that touches them with EIO; slow
 * sectors answer after a delay; and, for crash tests, the device can "lose
 * power" at its Nth write (optionally writing only the first bytes of it),
 * after which every write fails.
 *
 * Used by `remapfs simulate` (over FUSE, so the kernel sees real EIO) and by
 * unit tests. All state is plain data; nothing here is global.
 */
import { SECTOR_BYTES } from '../format/layout.js';
import type { BlockDevice } from './device.js';
import { RemapfsError } from '../errors.js';

export function ioError(op: string, object: string): RemapfsError {
  const cause = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
  return new RemapfsError(op, object, cause);
}

export interface CrashPlan {
  /** 1-based number of the write that is interrupted. */
  atWrite: number;
  /** Bytes of that write that reach the device before the crash (0 = none). */
  tornBytes?: number;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

export class FaultDevice implements BlockDevice {
  readonly name: string;
  readonly next: BlockDevice;
  readonly badSectors = new Set<number>();
  readonly slowSectors = new Set<number>();
  /** Sectors whose next reads fail: sector -> failures left (a weak sector). */
  readonly flakySectors = new Map<number, number>();
  slowDelayMs = 0;
  /** Writes attempted so far (counted before the crash check). */
  writeCount = 0;
  readCount = 0;
  crash: CrashPlan | undefined;
  crashed = false;

  constructor(next: BlockDevice, name = `fault(${next.name})`) {
    this.next = next;
    this.name = name;
  }

  get sizeBytes(): number {
    return this.next.sizeBytes;
  }

  read(buf: Buffer, byteOffset: number): void {
    this.readCount++;
    this.delayIfSlow(byteOffset, buf.length);
    const bad = this.firstBad(byteOffset, buf.length);
    if (bad >= 0) throw ioError('read', `${this.name} sector ${bad}`);
    if (this.flakySectors.size > 0) this.failIfFlaky(byteOffset, buf.length);
    this.next.read(buf, byteOffset);
  }

  private failIfFlaky(byteOffset: number, byteLength: number): void {
    const first = Math.floor(byteOffset / SECTOR_BYTES);
    const last = Math.floor((byteOffset + byteLength - 1) / SECTOR_BYTES);
    for (const [s, left] of this.flakySectors) {
      if (s < first || s > last) continue;
      if (left <= 1) this.flakySectors.delete(s);
      else this.flakySectors.set(s, left - 1);
      throw ioError('read', `${this.name} sector ${s} (flaky)`);
    }
  }

  readUncached(buf: Buffer, byteOffset: number): void {
    this.readCount++;
    this.delayIfSlow(byteOffset, buf.length);
    const bad = this.firstBad(byteOffset, buf.length);
    if (bad >= 0) throw ioError('read', `${this.name} sector ${bad}`);
    if (this.flakySectors.size > 0) this.failIfFlaky(byteOffset, buf.length);
    if (this.next.readUncached) this.next.readUncached(buf, byteOffset);
    else this.next.read(buf, byteOffset);
  }

  write(buf: Buffer, byteOffset: number): void {
    this.writeCount++;
    if (this.crashed) throw ioError('write', `${this.name} (crashed)`);
    if (this.crash && this.writeCount === this.crash.atWrite) {
      this.crashed = true;
      const torn = Math.min(this.crash.tornBytes ?? 0, buf.length);
      if (torn > 0) this.next.write(buf.subarray(0, torn), byteOffset);
      throw ioError('write', `${this.name} (crash at write ${this.writeCount})`);
    }
    this.delayIfSlow(byteOffset, buf.length);
    const bad = this.firstBad(byteOffset, buf.length);
    if (bad >= 0) throw ioError('write', `${this.name} sector ${bad}`);
    this.next.write(buf, byteOffset);
  }

  flush(): void {
    if (this.crashed) throw ioError('flush', `${this.name} (crashed)`);
    this.next.flush();
  }

  close(): void {
    this.next.close();
  }

  /** First bad sector in [byteOffset, byteOffset + byteLength), or -1. */
  firstBad(byteOffset: number, byteLength: number): number {
    if (this.badSectors.size === 0 || byteLength === 0) return -1;
    const first = Math.floor(byteOffset / SECTOR_BYTES);
    const last = Math.floor((byteOffset + byteLength - 1) / SECTOR_BYTES);
    if (last - first + 1 < this.badSectors.size) {
      for (let s = first; s <= last; s++) if (this.badSectors.has(s)) return s;
      return -1;
    }
    let found = -1;
    for (const s of this.badSectors) if (s >= first && s <= last && (found < 0 || s < found)) found = s;
    return found;
  }

  private delayIfSlow(byteOffset: number, byteLength: number): void {
    if (this.slowSectors.size === 0 || this.slowDelayMs <= 0) return;
    const first = Math.floor(byteOffset / SECTOR_BYTES);
    const last = Math.floor((byteOffset + byteLength - 1) / SECTOR_BYTES);
    for (let s = first; s <= last; s++) {
      if (this.slowSectors.has(s)) {
        Atomics.wait(sleeper, 0, 0, this.slowDelayMs);
        return;
      }
    }
  }
}
