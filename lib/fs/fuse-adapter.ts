/**
 * The FUSE adapter (fuse-native, libfuse 2): one regular file per pair at
 * `/<pair name>`. It is thin on purpose: it clips requests to the file size,
 * counts open handles, and is the only place where errors become errno values,
 * so another FUSE engine could replace it.
 *
 * All handlers run on the Node main thread; each calls the synchronous device
 * and answers before the next handler runs, so requests never interleave.
 */
import Fuse from 'fuse-native';
import { BlockDevice } from '../block/device';
import { errnoCodeOf } from '../errors';

export interface ServedFile {
  name: string;
  device: BlockDevice;
}

export interface AdapterOptions {
  /** Called once per failed request with the original error (not on the hot path). */
  onError?: (op: string, file: string, err: unknown) => void;
  /** Extra -o options, e.g. 'max_read=131072'. */
  extraOptions?: string[];
}

type Cb = (...args: any[]) => void;

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

const ERRNO: Record<string, number> = {
  ENOENT: Fuse.ENOENT,
  EIO: Fuse.EIO,
  ENOSPC: Fuse.ENOSPC,
  EINVAL: Fuse.EINVAL,
  EPERM: Fuse.EPERM,
  EACCES: Fuse.EACCES,
  EROFS: Fuse.EROFS,
  EBUSY: Fuse.EBUSY,
};

/** Maps an error to a negative errno; anything unknown is an I/O error. */
export function toErrno(err: unknown): number {
  const code = errnoCodeOf(err);
  if (code === 'ENOSPC') return Fuse.EIO; // the block device view: a write that cannot be placed is an I/O error
  return (code && ERRNO[code]) || Fuse.EIO;
}

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

export class FuseAdapter {
  readonly mountpoint: string;
  private readonly files = new Map<string, ServedFile>();
  private readonly openHandles = new Map<string, number>();
  private readonly fuse: TunedFuse;
  private readonly mountedAt = new Date();
  private nextHandle = 1;
  private readonly onError: (op: string, file: string, err: unknown) => void;

  constructor(mountpoint: string, files: ServedFile[], opts: AdapterOptions = {}) {
    this.mountpoint = mountpoint;
    for (const f of files) {
      this.files.set('/' + f.name, f);
      this.openHandles.set(f.name, 0);
    }
    this.onError = opts.onError ?? (() => undefined);
    const extra = ['big_writes', ...(opts.extraOptions ?? [])];
    this.fuse = new TunedFuse(mountpoint, this.operations(), { timeout: false, fsname: 'remapfs', subtype: 'remapfs', force: true }, extra);
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Lazy unmount plus release of the libfuse thread. Callers check openHandleCount() first. */
  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  openHandleCount(): number {
    let n = 0;
    for (const c of this.openHandles.values()) n += c;
    return n;
  }

  handlesByFile(): Record<string, number> {
    return Object.fromEntries(this.openHandles);
  }

  private fileStat(size: number, mode: number) {
    const t = this.mountedAt;
    return { mtime: t, atime: t, ctime: t, nlink: 1, size, mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }

  private operations() {
    const files = this.files;
    return {
      init: (cb: Cb) => cb(0),
      getattr: (p: string, cb: Cb) => {
        if (p === '/') return cb(0, this.fileStat(4096, S_IFDIR | 0o755));
        const f = files.get(p);
        if (!f) return cb(Fuse.ENOENT);
        return cb(0, this.fileStat(f.device.sizeBytes, S_IFREG | 0o600));
      },
      readdir: (p: string, cb: Cb) => {
        if (p !== '/') return cb(Fuse.ENOTDIR);
        return cb(0, [...files.values()].map((f) => f.name));
      },
      open: (p: string, _flags: number, cb: Cb) => {
        const f = files.get(p);
        if (!f) return cb(Fuse.ENOENT);
        this.openHandles.set(f.name, (this.openHandles.get(f.name) ?? 0) + 1);
        return cb(0, this.nextHandle++ & 0x7fffffff);
      },
      release: (p: string, _fd: number, cb: Cb) => {
        const f = files.get(p);
        if (f) this.openHandles.set(f.name, Math.max(0, (this.openHandles.get(f.name) ?? 0) - 1));
        return cb(0);
      },
      read: (p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        const f = files.get(p);
        if (!f) return cb(Fuse.ENOENT);
        const n = Math.max(0, Math.min(len, f.device.sizeBytes - pos));
        if (n === 0) return cb(0);
        try {
          f.device.read(n === buf.length ? buf : buf.subarray(0, n), pos);
        } catch (err) {
          this.onError('read', f.name, err);
          return cb(toErrno(err));
        }
        return cb(n);
      },
      write: (p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        const f = files.get(p);
        if (!f) return cb(Fuse.ENOENT);
        const n = Math.max(0, Math.min(len, f.device.sizeBytes - pos));
        if (n === 0) return cb(Fuse.ENOSPC);
        try {
          f.device.write(n === buf.length ? buf : buf.subarray(0, n), pos);
        } catch (err) {
          this.onError('write', f.name, err);
          return cb(toErrno(err));
        }
        return cb(n);
      },
      flush: (_p: string, _fd: number, cb: Cb) => cb(0),
      fsync: (p: string, _datasync: boolean, _fd: number, cb: Cb) => {
        const f = files.get(p);
        if (!f) return cb(Fuse.ENOENT);
        try {
          f.device.flush();
        } catch (err) {
          this.onError('fsync', f.name, err);
          return cb(toErrno(err));
        }
        return cb(0);
      },
      truncate: (p: string, size: number, cb: Cb) => this.truncate(p, size, cb),
      ftruncate: (p: string, _fd: number, size: number, cb: Cb) => this.truncate(p, size, cb),
      utimens: (p: string, _atime: unknown, _mtime: unknown, cb: Cb) => cb(files.has(p) || p === '/' ? 0 : Fuse.ENOENT),
      statfs: (_p: string, cb: Cb) => {
        let bytes = 0;
        for (const f of files.values()) bytes += f.device.sizeBytes;
        const bsize = 4096;
        const blocks = Math.ceil(bytes / bsize);
        return cb(0, { bsize, frsize: bsize, blocks, bfree: 0, bavail: 0, files: files.size, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 });
      },
    };
  }

  /** The virtual file has the size of its device; truncating it to another size is refused. */
  private truncate(p: string, size: number, cb: Cb): void {
    const f = this.files.get(p);
    if (!f) return cb(Fuse.ENOENT);
    return cb(size === f.device.sizeBytes ? 0 : Fuse.EPERM);
  }
}
