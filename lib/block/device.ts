/**
 * The one block-device interface every layer implements (nbdkit style: a layer
 * wraps `next` and adds one feature). All calls are synchronous: the FUSE
 * adapter hands its kernel buffer straight down, and a synchronous call keeps
 * each request atomic with respect to every other one on the event loop.
 *
 * Contract: read and write transfer exactly `buf.length` bytes at `byteOffset`
 * or throw; `byteOffset + buf.length` never exceeds `sizeBytes` (callers check,
 * and every implementation refuses such a request with `checkRange`).
 * A write that returns is on the device as far as this layer can tell (see
 * FileDevice for what that means per open mode); `flush` makes every earlier
 * write durable.
 */
import { RemapfsError } from '../errors.js';

export interface BlockDevice {
  /** For messages: a path or a layer name. */
  readonly name: string;
  readonly sizeBytes: number;
  read(buf: Buffer, byteOffset: number): void;
  /** Like read, but past any cache, so that errors and latency are the device's own (optional). */
  readUncached?(buf: Buffer, byteOffset: number): void;
  write(buf: Buffer, byteOffset: number): void;
  flush(): void;
  close(): void;
}

/** Refuses a request that does not lie inside [0, sizeBytes) (every implementation calls it first). */
export function checkRange(dev: { readonly name: string; readonly sizeBytes: number }, op: string, byteLength: number, byteOffset: number): void {
  if (!(byteOffset >= 0) || byteOffset + byteLength > dev.sizeBytes) {
    throw new RemapfsError(op, `${dev.name} bytes ${byteOffset}+${byteLength}`, `beyond the end of the device (${dev.sizeBytes} bytes)`);
  }
}
