/**
 * The one way remapfs writes a whole file (reports, mapfiles, exports, the
 * Prometheus textfile) and creates a new one (evacuation images).
 *
 * writeFileAtomic(target): the data goes to a temporary file with a random
 * name in the target's directory, opened O_CREAT|O_EXCL|O_NOFOLLOW (so nothing
 * planted at that name, a symlink included, is ever opened), is fsynced, then
 * renamed over the target, and the directory is fsynced. A reader sees the old
 * file or the new one, never a mix; a crash leaves at most a stray temp file.
 *
 * Symlinks: a target that is a symbolic link is refused (one line, nothing
 * written). rename() would replace the link itself, not the file it points
 * to, so even a link planted after the check cannot redirect the write; the
 * refusal only avoids silently turning a user's link into a plain file.
 * Anything else that is not a regular file (directory, device, FIFO) is
 * refused too.
 *
 * Modes: the file gets `mode` exactly (default 0600), whatever the umask.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { RemapfsError } from '../errors.js';

export interface WriteAtomicOptions {
  /** Permission bits of the new file (default 0o600), applied whatever the umask. */
  mode?: number;
  /** The operation named in errors (default "write"). */
  op?: string;
}

const TEMP_ATTEMPTS = 8;

/** Replaces `target` with `data`, atomically and durably; throws a one-line RemapfsError. */
export function writeFileAtomic(target: string, data: string | Buffer, opts: WriteAtomicOptions = {}): void {
  const op = opts.op ?? 'write';
  const mode = opts.mode ?? 0o600;
  const abs = path.resolve(target);
  const dir = path.dirname(abs);
  refuseNonRegular(op, abs);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let tmp = '';
  let fd = -1;
  try {
    for (let attempt = 0; fd < 0; attempt++) {
      tmp = path.join(dir, `.${path.basename(abs)}.${crypto.randomBytes(8).toString('hex')}.tmp`);
      try {
        fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST' || attempt + 1 >= TEMP_ATTEMPTS) {
          tmp = '';
          throw err;
        }
      }
    }
    fs.fchmodSync(fd, mode);
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, abs);
    tmp = '';
    fsyncDirectory(dir);
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    if (tmp) fs.rmSync(tmp, { force: true });
    throw new RemapfsError(op, abs, err, 'is the directory there and writable, with space left?');
  }
}

/**
 * Creates a new empty file with `mode` (default 0600, whatever the umask),
 * refusing to follow a symlink or reuse anything at `file`; returns false
 * when something already exists there (the caller decides what to do with it).
 */
export function createFileExclusive(file: string, opts: WriteAtomicOptions = {}): boolean {
  const mode = opts.mode ?? 0o600;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw new RemapfsError(opts.op ?? 'create', path.resolve(file), err);
  }
  try {
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

function refuseNonRegular(op: string, abs: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(abs);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return;
    throw new RemapfsError(op, abs, err);
  }
  if (st.isSymbolicLink()) throw new RemapfsError(op, abs, 'is a symbolic link', 'remapfs replaces only regular files: name the real file, or remove the link');
  if (!st.isFile()) throw new RemapfsError(op, abs, 'is not a regular file', 'name a regular file, or a new one');
}

function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
