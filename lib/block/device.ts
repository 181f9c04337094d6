/**
 * The one block-device interface every layer implements (nbdkit style: a layer
 * wraps `next` and adds one feature). All calls are synchronous: the FUSE
 * adapter hands its kernel buffer straight down, and a synchronous call keeps
 * each request atomic with respect to every other one on the event loop.
 *
 * Contract: read and write transfer exactly `buf.length` bytes at `byteOffset`
 * or throw; `byteOffset + buf.length` never exceeds `sizeBytes` (callers check).
 * A write that returns is on the device as far as this layer can tell (see
 * FileDevice for what that means per open mode); `flush` makes every earlier
 * write durable.
 */
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
