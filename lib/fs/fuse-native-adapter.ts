/**
 * The fuse-native engine (libfuse 2, the fallback): translates fuse-native's
 * callbacks into FsOps calls (ops.ts) and nothing more.
 *
 * All handlers run on the Node main thread; each calls the synchronous op and
 * answers before the next handler runs, so requests never interleave. Reads
 * and writes are answered through lean-dispatch.ts when it can be installed,
 * else through fuse-native's own dispatch; both call the same ops.
 * fuse-native unmounts with `fusermount -uz`, which Debian's fuse3 package no
 * longer has: its static unmount is replaced by fuse-unmount.ts's fallback.
 */
import Fuse from 'fuse-native';
import type { BlockDevice } from '../block/device.js';
import type { FsAdapter, EngineStats, AdapterOptions } from './adapter.js';
import { installLeanDispatch } from './lean-dispatch.js';
import { lazyUnmount } from './fuse-unmount.js';
import { type Attr, FsOps, type ServedFile } from './ops.js';

/** fuse-native's reply callback: an errno, then what the operation returns. */
type Cb = (...args: unknown[]) => void;

(Fuse as unknown as { unmount: (mnt: string, cb: (err: Error | null) => void) => void }).unmount = (mnt, cb) => {
  void lazyUnmount(mnt).then((r) => cb(r.ok ? null : new Error(`${r.command}: ${r.error}`)));
};

/** fuse-native has no switch for big_writes; its option string is extended here. */
class TunedFuse extends Fuse {
  constructor(mnt: string, ops: object, opts: object, private readonly extra: string[]) {
    super(mnt, ops, opts);
  }

  override _fuseOptions(): string {
    const base: string = super._fuseOptions();
    const extra = this.extra.join(',');
    if (!extra) return base;
    return base ? `${base},${extra}` : `-o${extra}`;
  }
}

export class FuseNativeAdapter implements FsAdapter {
  readonly engine = 'fuse-native' as const;
  readonly mountpoint: string;
  readonly ops: FsOps;
  private readonly fuse: TunedFuse;
  private readonly mountedAt = new Date();
  /** Why reads and writes go through fuse-native's stock dispatch, or undefined when the lean one serves them. */
  readonly stockDispatch: string | undefined;

  constructor(mountpoint: string, files: ServedFile[], opts: AdapterOptions = {}) {
    this.mountpoint = mountpoint;
    this.ops = new FsOps(files, opts.controlTree, opts.onError);
    const extra = ['big_writes', ...(opts.extraOptions ?? [])];
    this.fuse = new TunedFuse(mountpoint, this.operations(), { timeout: false, fsname: 'remapfs', subtype: 'remapfs', force: true }, extra);
    const ops = this.ops;
    this.stockDispatch = installLeanDispatch(this.fuse, {
      read: (p, fh, buf, len, pos) => ops.read(p, fh, buf, len, pos),
      write: (p, fh, buf, len, pos) => ops.write(p, fh, buf, len, pos),
    });
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Lazy unmount plus release of the libfuse thread. Callers check openHandleCount() first. */
  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  addFile(f: ServedFile): void {
    this.ops.addFile(f);
  }

  removeFile(name: string): void {
    this.ops.removeFile(name);
  }

  replaceDevice(name: string, device: BlockDevice): void {
    this.ops.replaceDevice(name, device);
  }

  handlesOn(name: string): number {
    return this.ops.handlesOn(name);
  }

  openHandleCount(): number {
    return Object.values(this.ops.handlesByFile()).reduce((a, b) => a + b, 0);
  }

  handlesByFile(): Record<string, number> {
    return this.ops.handlesByFile();
  }

  engineStats(): EngineStats | undefined {
    return undefined;
  }

  notices(): string[] {
    return this.stockDispatch ? [`remapfs: reads and writes use fuse-native's stock dispatch: ${this.stockDispatch}`] : [];
  }

  engineDetails(): undefined {
    return undefined;
  }

  private stat(a: Attr) {
    const t = this.mountedAt;
    return { mtime: t, atime: t, ctime: t, nlink: 1, size: a.size, mode: a.mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }

  private operations() {
    const ops = this.ops;
    const answer = (cb: Cb, r: number) => (r < 0 ? cb(r) : cb(0, r));
    return {
      init: (cb: Cb) => cb(0),
      getattr: (p: string, cb: Cb) => {
        const a = ops.getattr(p);
        return typeof a === 'number' ? cb(a) : cb(0, this.stat(a));
      },
      readdir: (p: string, cb: Cb) => {
        const r = ops.readdir(p);
        return typeof r === 'number' ? cb(r) : cb(0, r);
      },
      open: (p: string, _flags: number, cb: Cb) => answer(cb, ops.open(p)),
      release: (p: string, fh: number, cb: Cb) => cb(ops.release(p, fh)),
      read: (p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => cb(ops.read(p, fh, buf, len, pos)),
      write: (p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => cb(ops.write(p, fh, buf, len, pos)),
      flush: (_p: string, _fh: number, cb: Cb) => cb(0),
      fsync: (p: string, _datasync: boolean, _fh: number, cb: Cb) => cb(ops.fsync(p)),
      truncate: (p: string, size: number, cb: Cb) => cb(ops.truncate(p, size)),
      ftruncate: (p: string, _fh: number, size: number, cb: Cb) => cb(ops.truncate(p, size)),
      utimens: (p: string, _atime: unknown, _mtime: unknown, cb: Cb) => cb(ops.utimens(p)),
      statfs: (_p: string, cb: Cb) => {
        const bsize = 4096;
        const files = ops.allFiles().length;
        return cb(0, { bsize, frsize: bsize, blocks: Math.ceil(ops.totalBytes() / bsize), bfree: 0, bavail: 0, files, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 });
      },
    };
  }
}
