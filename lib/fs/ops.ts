/**
 * The file-system operations of a remapfs mount, whatever FUSE engine serves
 * them: one regular file per pair at `/<pair name>` and the `.remapfs` control
 * tree. This is the ONE place where requests are clipped to the file size,
 * where open handles are counted, and where errors become errno values
 * (negative Linux numbers, the same for every engine).
 *
 * Engine adapters (fuse-native-adapter.ts, native-adapter.ts) only translate
 * their requests into these calls. Everything here runs on the Node main
 * thread and is synchronous, so no two calls interleave; nothing is locked.
 * Invariants: `files` and `openHandles` have the same names; a control handle
 * holds the content rendered when it was opened (reads are stable).
 */
import * as os from 'os';
import type { BlockDevice } from '../block/device.js';
import type { FileDevice } from '../block/file-device.js';
import type { RemapDevice } from '../remap/remap-device.js';
import { errnoCodeOf, RemapfsError } from '../errors.js';

/** What a native data path needs to serve a pair file without JavaScript (absent: every request goes to JS). */
export interface FastPath {
  main: FileDevice;
  spare: FileDevice;
  blockSize: number;
  /** The virtual device whose routes the engine mirrors. */
  remap: RemapDevice;
}

export interface ServedFile {
  name: string;
  device: BlockDevice;
  fast?: FastPath;
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

const E = os.constants.errno;
/** Negative errno values, as every FUSE engine answers them. */
export const ERR = {
  ENOENT: -E.ENOENT,
  EIO: -E.EIO,
  ENOSPC: -E.ENOSPC,
  EINVAL: -E.EINVAL,
  EPERM: -E.EPERM,
  EACCES: -E.EACCES,
  EROFS: -E.EROFS,
  EBUSY: -E.EBUSY,
  ENOTDIR: -E.ENOTDIR,
  EOPNOTSUPP: -E.EOPNOTSUPP,
} as const;

const PASSED_ON = new Set(['ENOENT', 'EIO', 'EINVAL', 'EPERM', 'EACCES', 'EROFS', 'EBUSY']);

/** Maps an error to a negative errno; anything unknown is an I/O error. */
export function toErrno(err: unknown): number {
  const code = errnoCodeOf(err);
  // The block device view: a write that cannot be placed (spare full) is an I/O error.
  if (!code || !PASSED_ON.has(code)) return ERR.EIO;
  return -(E as Record<string, number>)[code]!;
}

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;

/** fallocate(2) modes the pair files accept (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
const ZERO_CHUNK_BYTES = 1024 * 1024;

export interface Attr {
  mode: number;
  size: number;
}

interface ControlHandle {
  file: ControlFile;
  content: Buffer;
}

function safeRead(cf: ControlFile): string {
  try {
    return cf.read();
  } catch (err) {
    return JSON.stringify({ error: err instanceof Error ? err.message : String(err) });
  }
}

export class FsOps {
  private readonly files = new Map<string, ServedFile>();
  private readonly openHandles = new Map<string, number>();
  private readonly controlHandles = new Map<number, ControlHandle>();
  private nextHandle = 1;
  private zeros: Buffer | undefined;

  constructor(
    files: ServedFile[],
    private readonly tree: ControlTree | undefined,
    /** Called once per failed request with the original error (not on the hot path). */
    private readonly onError: (op: string, file: string, err: unknown) => void = () => undefined,
  ) {
    for (const f of files) this.addFile(f);
  }

  // ---- the served files ----------------------------------------------------

  addFile(f: ServedFile): void {
    this.files.set(f.name, f);
    if (!this.openHandles.has(f.name)) this.openHandles.set(f.name, 0);
  }

  removeFile(name: string): void {
    this.files.delete(name);
    this.openHandles.delete(name);
  }

  /** Requests JS answers go to `device` from now on (a native fast path, if any, is the engine's business). */
  replaceDevice(name: string, device: BlockDevice): void {
    const f = this.files.get(name);
    if (f) this.files.set(name, { ...f, device });
  }

  file(name: string): ServedFile | undefined {
    return this.files.get(name);
  }

  allFiles(): ServedFile[] {
    return [...this.files.values()];
  }

  /** The pair file a path names ("/<name>"), if any. */
  fileAt(p: string): ServedFile | undefined {
    return p.lastIndexOf('/') === 0 ? this.files.get(p.slice(1)) : undefined;
  }

  handlesOn(name: string): number {
    return this.openHandles.get(name) ?? 0;
  }

  handlesByFile(): Record<string, number> {
    return Object.fromEntries(this.openHandles);
  }

  // ---- path operations (every engine's control tree; fuse-native's pair files too) ----

  getattr(p: string): Attr | number {
    if (p === '/') return { mode: S_IFDIR | 0o755, size: 4096 };
    const f = this.fileAt(p);
    if (f) return { mode: S_IFREG | 0o600, size: f.device.sizeBytes };
    if (this.controlDir(p)) return { mode: S_IFDIR | 0o755, size: 4096 };
    const cf = this.controlFile(p);
    if (!cf) return ERR.ENOENT;
    return { mode: S_IFREG | (cf.write ? 0o644 : 0o444), size: renderControl(safeRead(cf)).length };
  }

  readdir(p: string): string[] | number {
    if (p === '/') return [...this.files.keys(), ...(this.tree ? [CONTROL_DIR] : [])];
    return this.controlDir(p) ?? ERR.ENOTDIR;
  }

  /** A new handle (> 0), or a negative errno. Opens of pair files are counted. */
  open(p: string): number {
    const f = this.fileAt(p);
    if (f) {
      this.openHandles.set(f.name, this.handlesOn(f.name) + 1);
      return this.newHandle();
    }
    const cf = this.controlFile(p);
    if (!cf) return ERR.ENOENT;
    const fh = this.newHandle();
    this.controlHandles.set(fh, { file: cf, content: renderControl(safeRead(cf)) });
    return fh;
  }

  release(p: string, fh: number): number {
    if (this.controlHandles.delete(fh)) return 0;
    const f = this.fileAt(p);
    if (f) this.openHandles.set(f.name, Math.max(0, this.handlesOn(f.name) - 1));
    return 0;
  }

  /** Bytes read, or a negative errno. */
  read(p: string, fh: number, buf: Buffer, byteLength: number, byteOffset: number): number {
    const f = this.fileAt(p);
    if (f) return this.readFile(f, buf, byteLength, byteOffset);
    const h = this.controlHandles.get(fh);
    if (!h) return ERR.ENOENT;
    const n = Math.max(0, Math.min(byteLength, h.content.length - byteOffset));
    if (n > 0) h.content.copy(buf, 0, byteOffset, byteOffset + n);
    return n;
  }

  /** Bytes written, or a negative errno. */
  write(p: string, fh: number, buf: Buffer, byteLength: number, byteOffset: number): number {
    const f = this.fileAt(p);
    return f ? this.writeFile(f, buf, byteLength, byteOffset) : this.controlWrite(fh, buf, byteLength);
  }

  fsync(p: string): number {
    const f = this.fileAt(p);
    return f ? this.flushFile(f) : ERR.ENOENT;
  }

  /** The virtual file has the size of its device; truncating it to another size is refused. */
  truncate(p: string, sizeBytes: number): number {
    const f = this.fileAt(p);
    if (f) return sizeBytes === f.device.sizeBytes ? 0 : ERR.EPERM;
    const cf = this.controlFile(p);
    if (!cf) return ERR.ENOENT;
    return cf.write ? 0 : ERR.EACCES; // "echo x > config" truncates first
  }

  utimens(p: string): number {
    return this.fileAt(p) || p === '/' ? 0 : ERR.ENOENT;
  }

  totalBytes(): number {
    let bytes = 0;
    for (const f of this.files.values()) bytes += f.device.sizeBytes;
    return bytes;
  }

  // ---- pair file data (the slow path of the native engine calls these directly) ----

  readFile(f: ServedFile, buf: Buffer, byteLength: number, byteOffset: number): number {
    const n = Math.max(0, Math.min(byteLength, f.device.sizeBytes - byteOffset));
    if (n === 0) return 0;
    try {
      f.device.read(n === buf.length ? buf : buf.subarray(0, n), byteOffset);
    } catch (err) {
      this.onError('read', f.name, err);
      return toErrno(err);
    }
    return n;
  }

  writeFile(f: ServedFile, buf: Buffer, byteLength: number, byteOffset: number): number {
    const n = Math.max(0, Math.min(byteLength, f.device.sizeBytes - byteOffset));
    if (n === 0) return ERR.ENOSPC;
    try {
      f.device.write(n === buf.length ? buf : buf.subarray(0, n), byteOffset);
    } catch (err) {
      this.onError('write', f.name, err);
      return toErrno(err);
    }
    return n;
  }

  flushFile(f: ServedFile): number {
    try {
      f.device.flush();
    } catch (err) {
      this.onError('fsync', f.name, err);
      return toErrno(err);
    }
    return 0;
  }

  /**
   * Punch a hole or zero a range (what a loop device's discard and write-zeroes
   * become): the range reads back as zeros. The slow path writes zeros through
   * the device, so remapped blocks keep their remap and a pending block heals.
   */
  fallocateFile(f: ServedFile, mode: number, byteOffset: number, byteLength: number): number {
    const zeroing = mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) || (mode & ~FALLOC_FL_KEEP_SIZE) === FALLOC_FL_ZERO_RANGE;
    if (!zeroing) return ERR.EOPNOTSUPP;
    const end = Math.min(byteOffset + byteLength, f.device.sizeBytes);
    if (byteOffset < 0 || byteLength <= 0) return ERR.EINVAL;
    if (byteOffset >= f.device.sizeBytes) return mode & FALLOC_FL_KEEP_SIZE ? 0 : ERR.ENOSPC;
    this.zeros ??= Buffer.alloc(ZERO_CHUNK_BYTES);
    try {
      for (let pos = byteOffset; pos < end; pos += ZERO_CHUNK_BYTES) {
        f.device.write(this.zeros.subarray(0, Math.min(ZERO_CHUNK_BYTES, end - pos)), pos);
      }
    } catch (err) {
      this.onError('fallocate', f.name, err);
      return toErrno(err);
    }
    return 0;
  }

  // ---- control tree ----------------------------------------------------------

  /**
   * Settings arrive as text, and each write() is a whole input: it is
   * validated and applied at once, or refused with EINVAL and nothing changes,
   * so the writing program sees the refusal (an error at close() is ignored
   * by shells). The write's offset does not matter.
   */
  private controlWrite(fh: number, buf: Buffer, byteLength: number): number {
    const h = this.controlHandles.get(fh);
    if (!h) return ERR.ENOENT;
    if (!h.file.write) return ERR.EACCES;
    try {
      h.file.write(buf.toString('utf8', 0, byteLength));
      return byteLength;
    } catch (err) {
      this.onError('write', CONTROL_DIR, err);
      // A value refused is EINVAL; a setting that could not be stored (the database) is an I/O error.
      return err instanceof RemapfsError ? toErrno(err) : ERR.EINVAL;
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

  private newHandle(): number {
    const fh = this.nextHandle++ & 0x7fffffff;
    return fh === 0 ? this.newHandle() : fh;
  }
}
