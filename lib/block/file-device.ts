/**
 * FileDevice: the bottom layer, a regular image file or a block device.
 *
 * Every write must report its own failure (a failing disk reports a buffered
 * write's error only at writeback, too late to remap). Open modes:
 *  - 'auto' (default): writes with O_DIRECT, reads through the page cache.
 *    O_DIRECT writes invalidate the cached pages they cover, so the two stay
 *    coherent; falls back to O_DSYNC writes where O_DIRECT is refused.
 *  - 'direct': reads and writes with O_DIRECT (nothing cached at all).
 *  - 'dsync': O_DSYNC writes (durable when they return), cached reads.
 *  - 'buffered': neither; only for scratch files in tests and tools.
 * docs/architecture.md records the measurements behind the default.
 *
 * O_DIRECT transfers go through an aligned bounce buffer (Node cannot align a
 * Buffer, so it lives in WebAssembly memory, which is page-aligned); ranges
 * that do not start and end on the device's alignment are read-modify-written.
 *
 * A request outside [0, sizeBytes) is refused (a write past the end would
 * grow an image file).
 *
 * Invariants: the bounce buffer is used by one call at a time (all calls are
 * synchronous); `sizeBytes` never changes while open.
 */
import * as fs from 'fs';
import { type BlockDevice, checkRange } from './device.js';
import { alignWindow } from './align.js';
import { RemapfsError } from '../errors.js';

export type OpenMode = 'auto' | 'direct' | 'dsync' | 'buffered';
export const OPEN_MODES: readonly OpenMode[] = ['auto', 'direct', 'dsync', 'buffered'];

export interface FileDeviceOptions {
  mode?: OpenMode;
  readOnly?: boolean;
}

const BOUNCE_BYTES = 1024 * 1024;
const WASM_PAGE_BYTES = 65536;

export { type DeviceIdentity, identify, sameStorage } from './identify.js';
import { identify } from './identify.js';

export class FileDevice implements BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  readonly mode: OpenMode;
  /** How writes reach the device: 'direct', 'dsync' or 'buffered'. */
  readonly writePath: 'direct' | 'dsync' | 'buffered';
  private readFd: number;
  private writeFd: number;
  private readonly readDirect: boolean;
  /** O_DIRECT alignment in bytes (1 when nothing is direct). */
  private readonly alignBytes: number;
  private bounce: Buffer | undefined;
  /** Lazily opened O_DSYNC descriptor for an unaligned tail in direct mode. */
  private tailFd = -1;
  private readonly realPath: string;

  private constructor(name: string, realPath: string, sizeBytes: number, mode: OpenMode, fds: { readFd: number; writeFd: number; readDirect: boolean; writePath: 'direct' | 'dsync' | 'buffered'; alignBytes: number }) {
    this.name = name;
    this.realPath = realPath;
    this.sizeBytes = sizeBytes;
    this.mode = mode;
    this.readFd = fds.readFd;
    this.writeFd = fds.writeFd;
    this.readDirect = fds.readDirect;
    this.writePath = fds.writePath;
    this.alignBytes = fds.alignBytes;
    if (fds.readDirect || fds.writePath === 'direct') this.bounce = alignedBuffer(BOUNCE_BYTES + 2 * fds.alignBytes);
  }

  static open(path: string, opts: FileDeviceOptions = {}): FileDevice {
    const id = identify(path);
    const mode = opts.mode ?? 'auto';
    const readOnly = opts.readOnly ?? false;
    // O_EXCL keeps a mounted block device from being served by mistake. Only the
    // first descriptor takes it: a second exclusive open, even by this process, fails.
    const exclusive = id.isBlockDevice && !readOnly ? fs.constants.O_EXCL : 0;
    const base = readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    const opened: number[] = [];
    const openFd = (extra: number): number => {
      try {
        const fd = fs.openSync(id.realPath, base | extra | (opened.length === 0 ? exclusive : 0));
        opened.push(fd);
        return fd;
      } catch (err) {
        throw openError(path, err);
      }
    };
    try {
      let directFd = -1;
      let alignBytes = 1;
      if (mode === 'auto' || mode === 'direct') {
        const r = openDirect(id.realPath, base | exclusive, id.sizeBytes);
        if (r) {
          directFd = r.fd;
          opened.push(r.fd);
          alignBytes = r.alignBytes;
        } else if (mode === 'direct') {
          throw new RemapfsError('open', path, 'O_DIRECT is refused by this file system', 'use another open mode');
        }
      }
      if (mode === 'direct') {
        return new FileDevice(path, id.realPath, id.sizeBytes, mode, { readFd: directFd, writeFd: directFd, readDirect: true, writePath: 'direct', alignBytes });
      }
      const readFd = openFd(0);
      if (directFd >= 0) {
        return new FileDevice(path, id.realPath, id.sizeBytes, mode, { readFd, writeFd: directFd, readDirect: false, writePath: 'direct', alignBytes });
      }
      const writePath = mode === 'buffered' || readOnly ? 'buffered' : 'dsync';
      const writeFd = writePath === 'dsync' ? openFd(fs.constants.O_DSYNC) : readFd;
      return new FileDevice(path, id.realPath, id.sizeBytes, mode, { readFd, writeFd, readDirect: false, writePath, alignBytes: 1 });
    } catch (err) {
      for (const fd of opened) fs.closeSync(fd);
      throw err;
    }
  }

  /** For a native data path: the descriptor of reads and writes (writes keep this device's durability), whether it is O_DIRECT, and O_DIRECT's alignment (1 when nothing is direct). */
  get ioFd(): number { return this.writeFd; }
  get writesDirect(): boolean { return this.writePath === 'direct'; }
  get directAlignBytes(): number { return this.alignBytes; }

  read(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'read', buf.length, byteOffset);
    if (this.readDirect) this.readThroughBounce(buf, byteOffset);
    else this.readExact(this.readFd, buf, byteOffset);
  }

  /** Reads through the O_DIRECT descriptor when there is one (the page cache cannot answer). */
  readUncached(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'read', buf.length, byteOffset);
    if (this.readDirect || this.writePath === 'direct') this.readThroughBounce(buf, byteOffset);
    else this.readExact(this.readFd, buf, byteOffset);
  }

  private readThroughBounce(buf: Buffer, byteOffset: number): void {
    const bounce = this.bounce as Buffer;
    let done = 0;
    while (done < buf.length) {
      const chunkBytes = Math.min(buf.length - done, BOUNCE_BYTES);
      const w = alignWindow(byteOffset + done, chunkBytes, this.alignBytes);
      this.readWindow(bounce, w.byteOffset, w.byteLength);
      bounce.copy(buf, done, w.headSkipBytes, w.headSkipBytes + chunkBytes);
      done += chunkBytes;
    }
  }

  write(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'write', buf.length, byteOffset);
    if (this.writePath !== 'direct') {
      this.writeExact(this.writeFd, buf, byteOffset);
      return;
    }
    const bounce = this.bounce as Buffer;
    let done = 0;
    while (done < buf.length) {
      const chunkBytes = Math.min(buf.length - done, BOUNCE_BYTES);
      const chunkOffset = byteOffset + done;
      const w = alignWindow(chunkOffset, chunkBytes, this.alignBytes);
      if (w.byteOffset + w.byteLength > this.sizeBytes) {
        // The file ends inside an alignment unit: O_DIRECT cannot write it exactly.
        this.writeExact(this.tailDescriptor(), buf.subarray(done, done + chunkBytes), chunkOffset);
      } else {
        if (!w.exact) {
          // Read-modify-write of the partial first and last alignment units.
          this.readWindow(bounce, w.byteOffset, this.alignBytes);
          const lastUnit = w.byteOffset + w.byteLength - this.alignBytes;
          if (lastUnit > w.byteOffset) {
            this.readWindow(bounce.subarray(w.byteLength - this.alignBytes), lastUnit, this.alignBytes);
          }
        }
        buf.copy(bounce, w.headSkipBytes, done, done + chunkBytes);
        this.writeExact(this.writeFd, bounce.subarray(0, w.byteLength), w.byteOffset);
      }
      done += chunkBytes;
    }
  }

  flush(): void {
    try {
      fs.fdatasyncSync(this.writeFd);
      if (this.tailFd >= 0) fs.fdatasyncSync(this.tailFd);
    } catch (err) {
      throw new RemapfsError('flush', this.name, err);
    }
  }

  close(): void {
    const fds = new Set([this.readFd, this.writeFd, this.tailFd]);
    for (const fd of fds) if (fd >= 0) fs.closeSync(fd);
    this.readFd = this.writeFd = this.tailFd = -1;
    this.bounce = undefined;
  }

  /** Reads an aligned window through the direct descriptor; past the end of the file reads zeros. */
  private readWindow(target: Buffer, byteOffset: number, byteLength: number): void {
    const fd = this.writePath === 'direct' ? this.writeFd : this.readFd;
    let done = 0;
    while (done < byteLength) {
      let n: number;
      try {
        n = fs.readSync(fd, target, done, byteLength - done, byteOffset + done);
      } catch (err) {
        throw new RemapfsError('read', `${this.name} at byte ${byteOffset + done}`, err);
      }
      if (n === 0) {
        target.fill(0, done, byteLength);
        return;
      }
      done += n;
    }
  }

  private readExact(fd: number, buf: Buffer, byteOffset: number): void {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, done, buf.length - done, byteOffset + done);
      } catch (err) {
        throw new RemapfsError('read', `${this.name} at byte ${byteOffset + done}`, err);
      }
      if (n === 0) throw new RemapfsError('read', `${this.name} at byte ${byteOffset + done}`, shortTransfer('unexpected end of device'));
      done += n;
    }
  }

  private writeExact(fd: number, buf: Buffer, byteOffset: number): void {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = fs.writeSync(fd, buf, done, buf.length - done, byteOffset + done);
      } catch (err) {
        throw new RemapfsError('write', `${this.name} at byte ${byteOffset + done}`, err);
      }
      if (n === 0) throw new RemapfsError('write', `${this.name} at byte ${byteOffset + done}`, shortTransfer('device accepted no bytes'));
      done += n;
    }
  }

  private tailDescriptor(): number {
    if (this.tailFd < 0) {
      try {
        this.tailFd = fs.openSync(this.realPath, fs.constants.O_RDWR | fs.constants.O_DSYNC);
      } catch (err) {
        throw new RemapfsError('open', this.name, err);
      }
    }
    return this.tailFd;
  }
}

/** Opens with O_DIRECT and finds its alignment; undefined when the file system refuses O_DIRECT. */
function openDirect(realPath: string, baseFlags: number, sizeBytes: number): { fd: number; alignBytes: number } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(realPath, baseFlags | fs.constants.O_DIRECT);
  } catch (err) {
    if (isEinval(err)) return undefined;
    throw openError(realPath, err);
  }
  const alignBytes = probeDirectAlignment(fd, sizeBytes);
  if (alignBytes > 0) return { fd, alignBytes };
  fs.closeSync(fd);
  return undefined;
}

/** An open that failed; EBUSY (O_EXCL on a block device) says the device is in use, and how to find by what. */
function openError(path: string, err: unknown): RemapfsError {
  if ((err as { code?: unknown }).code !== 'EBUSY') return new RemapfsError('open', path, err);
  return new RemapfsError('open', path, err, `the device is in use: a file system on it is mounted, or another program holds it open exclusively (see "lsblk ${path}" and "fuser -vm ${path}")`);
}

/** A Buffer whose memory starts on a 64 KiB boundary (WebAssembly memory is page-aligned). */
export function alignedBuffer(byteLength: number): Buffer {
  const pages = Math.ceil(byteLength / WASM_PAGE_BYTES);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return Buffer.from(memory.buffer, 0, byteLength);
}

/**
 * Finds the smallest alignment O_DIRECT accepts by reading at it; 0 when even
 * 4096 is refused. An empty file cannot be probed and gets 4096.
 */
function probeDirectAlignment(fd: number, sizeBytes: number): number {
  if (sizeBytes < 4096) return sizeBytes === 0 ? 4096 : 0;
  const probe = alignedBuffer(4096);
  for (const alignBytes of [512, 4096]) {
    try {
      fs.readSync(fd, probe, 0, alignBytes, alignBytes);
      return alignBytes;
    } catch (err) {
      // Any other error (EIO on a failing disk) means the alignment passed validation.
      if (!isEinval(err)) return alignBytes;
    }
  }
  return 0;
}

function isEinval(err: unknown): boolean {
  return !!err && typeof err === 'object' && (err as { code?: string }).code === 'EINVAL';
}

/** A device that ends early or takes no bytes failed the transfer: an I/O error (EIO) to the layers above. */
function shortTransfer(why: string): Error {
  return Object.assign(new Error(why), { code: 'EIO' });
}
