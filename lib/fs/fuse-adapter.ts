/**
 * The FUSE adapter (fuse-native, libfuse 2): one regular file per pair at
 * `/<pair name>`. It is thin on purpose: it clips requests to the file size,
 * counts open handles, and is the only place where errors become errno values,
 * so another FUSE engine could replace it.
 *
 * All handlers run on the Node main thread; each calls the synchronous device
 * and answers before the next handler runs, so requests never interleave.
 * Reads and writes are answered through lean-dispatch.ts when it can be
 * installed, else through fuse-native's own dispatch; both call the same ops.
 */
import Fuse from 'fuse-native';
import { BlockDevice } from '../block/device';
import { errnoCodeOf, RemapfsError } from '../errors';
import { installLeanDispatch } from './lean-dispatch';

export interface ServedFile {
  name: string;
  device: BlockDevice;
}

/** A small text file generated on open (live stats, health, settings); writable when `write` is given. */
export interface ControlFile {
  read(): string;
  /** Applies written text; throws an Error whose message explains a rejected value. */
  write?(text: string): void;
}

/** The read-only directory tree of control files under /.remapfs. */
export interface ControlTree {
  /** Entries of a directory below the mount root (e.g. "/.remapfs"), or undefined if it is not one. */
  list(dir: string): string[] | undefined;
  file(path: string): ControlFile | undefined;
}

export const CONTROL_DIR = '.remapfs';
/** Control file contents are padded to this granularity so their size rarely changes. */
const CONTROL_PAD_BYTES = 1024;

export function renderControl(text: string): Buffer {
  const body = text.endsWith('\n') ? text : text + '\n';
  const raw = Buffer.from(body, 'utf8');
  const size = Math.ceil((raw.length + 256) / CONTROL_PAD_BYTES) * CONTROL_PAD_BYTES;
  const out = Buffer.alloc(size, 0x20);
  raw.copy(out, 0, 0, raw.length - 1);
  out[size - 1] = 0x0a;
  return out;
}

interface ControlHandle {
  file: ControlFile;
  content: Buffer;
}

export interface AdapterOptions {
  /** Files under /.remapfs (live monitoring and settings). */
  controlTree?: ControlTree;
  /** Called once per failed request with the original error (not on the hot path). */
  onError?: (op: string, file: string, err: unknown) => void;
  /** Extra -o options, e.g. 'max_read=131072'. */
  extraOptions?: string[];
  /** Keep fuse-native's own request dispatch for reads and writes (see lean-dispatch.ts). */
  stockDispatch?: boolean;
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

function safeRead(cf: ControlFile): string {
  try {
    return cf.read();
  } catch (err) {
    return JSON.stringify({ error: err instanceof Error ? err.message : String(err) });
  }
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
  private readonly controlHandles = new Map<number, ControlHandle>();
  private readonly tree: ControlTree | undefined;
  private readonly onError: (op: string, file: string, err: unknown) => void;
  /** Why reads and writes go through fuse-native's stock dispatch, or undefined when the lean one serves them. */
  readonly stockDispatch: string | undefined;

  constructor(mountpoint: string, files: ServedFile[], opts: AdapterOptions = {}) {
    this.mountpoint = mountpoint;
    for (const f of files) {
      this.files.set('/' + f.name, f);
      this.openHandles.set(f.name, 0);
    }
    this.onError = opts.onError ?? (() => undefined);
    this.tree = opts.controlTree;
    const extra = ['big_writes', ...(opts.extraOptions ?? [])];
    this.fuse = new TunedFuse(mountpoint, this.operations(), { timeout: false, fsname: 'remapfs', subtype: 'remapfs', force: true }, extra);
    this.stockDispatch = opts.stockDispatch
      ? 'asked for'
      : installLeanDispatch(this.fuse, { read: (p, fd, buf, len, pos) => this.readOp(p, fd, buf, len, pos), write: (p, fd, buf, len, pos) => this.writeOp(p, fd, buf, len, pos) });
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Lazy unmount plus release of the libfuse thread. Callers check openHandleCount() first. */
  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((err: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Serves one more file (hot-plug). */
  addFile(f: ServedFile): void {
    this.files.set('/' + f.name, f);
    if (!this.openHandles.has(f.name)) this.openHandles.set(f.name, 0);
  }

  /** Stops serving a file; callers make sure no handle is open on it. */
  removeFile(name: string): void {
    this.files.delete('/' + name);
    this.openHandles.delete(name);
  }

  /** Swaps the device behind a served file (e.g. for one that fails every request after its disk left). */
  replaceDevice(name: string, device: BlockDevice): void {
    const f = this.files.get('/' + name);
    if (f) this.files.set('/' + name, { name, device });
  }

  handlesOn(name: string): number {
    return this.openHandles.get(name) ?? 0;
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
        if (f) return cb(0, this.fileStat(f.device.sizeBytes, S_IFREG | 0o600));
        const dir = this.controlDir(p);
        if (dir) return cb(0, this.fileStat(4096, S_IFDIR | 0o755));
        const cf = this.controlFile(p);
        if (!cf) return cb(Fuse.ENOENT);
        return cb(0, this.fileStat(renderControl(safeRead(cf)).length, S_IFREG | (cf.write ? 0o644 : 0o444)));
      },
      readdir: (p: string, cb: Cb) => {
        if (p === '/') return cb(0, [...[...files.values()].map((f) => f.name), ...(this.tree ? [CONTROL_DIR] : [])]);
        const dir = this.controlDir(p);
        if (!dir) return cb(Fuse.ENOTDIR);
        return cb(0, dir);
      },
      open: (p: string, _flags: number, cb: Cb) => {
        const f = files.get(p);
        if (!f) {
          const cf = this.controlFile(p);
          if (!cf) return cb(Fuse.ENOENT);
          const fd = this.nextHandle++ & 0x7fffffff;
          this.controlHandles.set(fd, { file: cf, content: renderControl(safeRead(cf)) });
          return cb(0, fd);
        }
        this.openHandles.set(f.name, (this.openHandles.get(f.name) ?? 0) + 1);
        return cb(0, this.nextHandle++ & 0x7fffffff);
      },
      release: (p: string, fd: number, cb: Cb) => {
        if (this.controlHandles.delete(fd)) return cb(0);
        const f = files.get(p);
        if (f) this.openHandles.set(f.name, Math.max(0, (this.openHandles.get(f.name) ?? 0) - 1));
        return cb(0);
      },
      read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => cb(this.readOp(p, fd, buf, len, pos)),
      write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => cb(this.writeOp(p, fd, buf, len, pos)),
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

  /** A read request: bytes read, or a negative errno. */
  private readOp(p: string, fd: number, buf: Buffer, len: number, pos: number): number {
    const f = this.files.get(p);
    if (!f) {
      const h = this.controlHandles.get(fd);
      if (!h) return Fuse.ENOENT;
      const n = Math.max(0, Math.min(len, h.content.length - pos));
      if (n > 0) h.content.copy(buf, 0, pos, pos + n);
      return n;
    }
    const n = Math.max(0, Math.min(len, f.device.sizeBytes - pos));
    if (n === 0) return 0;
    try {
      f.device.read(n === buf.length ? buf : buf.subarray(0, n), pos);
    } catch (err) {
      this.onError('read', f.name, err);
      return toErrno(err);
    }
    return n;
  }

  /** A write request: bytes written, or a negative errno. */
  private writeOp(p: string, fd: number, buf: Buffer, len: number, pos: number): number {
    const f = this.files.get(p);
    if (!f) return this.controlWrite(fd, buf, len);
    const n = Math.max(0, Math.min(len, f.device.sizeBytes - pos));
    if (n === 0) return Fuse.ENOSPC;
    try {
      f.device.write(n === buf.length ? buf : buf.subarray(0, n), pos);
    } catch (err) {
      this.onError('write', f.name, err);
      return toErrno(err);
    }
    return n;
  }

  /** The virtual file has the size of its device; truncating it to another size is refused. */
  private truncate(p: string, size: number, cb: Cb): void {
    const f = this.files.get(p);
    if (!f) {
      const cf = this.controlFile(p);
      if (!cf) return cb(Fuse.ENOENT);
      return cb(cf.write ? 0 : Fuse.EACCES); // "echo x > config" truncates first
    }
    return cb(size === f.device.sizeBytes ? 0 : Fuse.EPERM);
  }

  /**
   * Settings arrive as text, and each write() is a whole input: it is
   * validated and applied at once, or refused with EINVAL and nothing changes,
   * so the writing program sees the refusal (an error at close() is ignored
   * by shells). The write's offset does not matter.
   */
  private controlWrite(fd: number, buf: Buffer, len: number): number {
    const h = this.controlHandles.get(fd);
    if (!h) return Fuse.ENOENT;
    if (!h.file.write) return Fuse.EACCES;
    try {
      h.file.write(buf.toString('utf8', 0, len));
      return len;
    } catch (err) {
      this.onError('write', CONTROL_DIR, err);
      // A value refused is EINVAL; a setting that could not be stored (the database) is an I/O error.
      return err instanceof RemapfsError ? toErrno(err) : Fuse.EINVAL;
    }
  }

  private controlDir(p: string): string[] | undefined {
    if (!this.tree || !(p === '/' + CONTROL_DIR || p.startsWith('/' + CONTROL_DIR + '/'))) return undefined;
    return this.tree.list(p);
  }

  private controlFile(p: string): ControlFile | undefined {
    if (!this.tree || !p.startsWith('/' + CONTROL_DIR + '/')) return undefined;
    return this.tree.file(p);
  }
}
