/**
 * The one check before a command writes a file the user named (map --svg,
 * export --ddrescue-map, health --prometheus, evacuate --to and its mapfile):
 * the path must not be a device (main or spare) of any pair in the database,
 * unfinished imports included, nor the database or its -wal, -shm or
 * -journal file, nor a file served under a live remapfs mount.
 *
 * Paths are compared by what they reach (identify/sameStorage: dev:ino for
 * files, rdev for block devices, a loop device or partition resolved to its
 * backing storage), so symlinks and hard links count; and by canonical path
 * (symlinks of the existing part resolved), which also catches a path that
 * does not exist yet: writing a spare that went missing, or a -wal file,
 * would plant a file where remapfs later looks for one.
 *
 * It only stats and reads sysfs; the caller runs it before writing anything.
 * writeFileAtomic still refuses symlinks and non-regular targets.
 */
import * as fs from 'fs';
import * as path from 'path';
import { type DeviceIdentity, identify, sameStorage } from '../block/file-device.js';
import { RemapfsError } from '../errors.js';
import type { Store } from '../store/db.js';

/** Another output of the same command that this one must not overwrite (evacuate's target and mapfile). */
export interface SiblingOutput {
  path: string;
  /** What it is, for the error: "the evacuation target (--to)". */
  what: string;
}

interface Protected {
  path: string;
  /** Completes "is …": "the main device of pair p". */
  what: string;
}

const DB_SIBLINGS = ['-wal', '-shm', '-journal'] as const;
const MAX_LINKS = 40;

/**
 * Throws a one-line RemapfsError (exit status 1) when `target` is one of the
 * files above or one of `siblings`; `op` names the operation in it.
 */
export function refuseProtectedOutput(store: Store, op: string, target: string, siblings: SiblingOutput[] = []): void {
  const abs = path.resolve(target);
  const canon = canonicalPath(abs);
  const tid = identityOf(abs);
  const refuse = (cause: string): never => {
    throw new RemapfsError(op, abs, cause, "name a file of its own: remapfs never writes over a pair's device or its database");
  };
  for (const p of protectedFiles(store, siblings)) {
    const pid = identityOf(p.path);
    const shown = path.resolve(p.path) === abs ? '' : ` (${p.path})`;
    if (tid && pid && tid.key === pid.key) refuse(`is ${p.what}${shown}`);
    if (tid && pid && sameStorage(tid, pid)) refuse(`shares storage with ${p.what}${shown}`);
    if (canonicalPath(p.path) === canon) refuse(`is ${p.what}${shown}`);
  }
  if (tid) {
    for (const m of store.mounts.live()) {
      if (tid.extent.chain.some((c) => c.startsWith(m.mountpoint + '/'))) refuse(`is served by remapfs at ${m.mountpoint}`);
    }
  }
}

function protectedFiles(store: Store, siblings: SiblingOutput[]): Protected[] {
  const out: Protected[] = [];
  const pairs = [...store.pairs.list(), ...store.imports.unfinished().map((u) => u.pair)];
  for (const p of pairs) {
    out.push({ path: p.mainPath, what: `the main device of pair ${p.name}` }, { path: p.sparePath, what: `the spare device of pair ${p.name}` });
  }
  out.push({ path: store.path, what: 'the database' });
  for (const s of DB_SIBLINGS) out.push({ path: `${store.path}${s}`, what: `the database's ${s} file` });
  for (const s of siblings) out.push({ path: s.path, what: s.what });
  return out;
}

/** What a path reaches when it is a regular file or a block device; undefined otherwise (missing, a directory…). */
function identityOf(p: string): DeviceIdentity | undefined {
  try {
    return identify(p);
  } catch {
    return undefined;
  }
}

/**
 * The absolute path with every symlink resolved, for a path that may not
 * exist: a dangling link is followed to where it points, a missing tail is
 * kept as written under its resolved parent.
 */
export function canonicalPath(p: string, links = 0): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    // missing, or a dangling link somewhere: resolve piece by piece
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(abs);
  } catch {
    st = undefined;
  }
  if (st?.isSymbolicLink() && links < MAX_LINKS) {
    try {
      return canonicalPath(path.resolve(path.dirname(abs), fs.readlinkSync(abs)), links + 1);
    } catch {
      return abs;
    }
  }
  const parent = path.dirname(abs);
  if (parent === abs) return abs;
  return path.join(canonicalPath(parent, links), path.basename(abs));
}
