/** MemoryDevice: a BlockDevice over a Buffer, for unit tests and tools. */
import { type BlockDevice, checkRange } from './device.js';
import { RemapfsError } from '../errors.js';

export class MemoryDevice implements BlockDevice {
  readonly name: string;
  readonly data: Buffer;
  flushes = 0;
  closed = false;

  constructor(name: string, sizeBytes: number) {
    this.name = name;
    this.data = Buffer.alloc(sizeBytes);
  }

  get sizeBytes(): number {
    return this.data.length;
  }

  read(buf: Buffer, byteOffset: number): void {
    this.check('read', buf.length, byteOffset);
    this.data.copy(buf, 0, byteOffset, byteOffset + buf.length);
  }

  write(buf: Buffer, byteOffset: number): void {
    this.check('write', buf.length, byteOffset);
    buf.copy(this.data, byteOffset);
  }

  flush(): void {
    this.flushes++;
  }

  close(): void {
    this.closed = true;
  }

  private check(op: string, byteLength: number, byteOffset: number): void {
    if (this.closed) throw new RemapfsError(op, this.name, 'device is closed');
    checkRange(this, op, byteLength, byteOffset);
  }
}
