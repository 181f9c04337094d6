/**
 * Lazy unmount of a FUSE mount without caring which FUSE package is
 * installed: Debian's fuse3 has `fusermount3` and replaces `fuse` (libfuse 2's
 * `fusermount`); remapfs runs as root, so plain `umount -l` works as a last
 * resort. Tools are tried in that order, each one found on PATH; the next is
 * tried when one fails. Pure apart from running the tools.
 */
import { execFile, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

/** The candidates, best first: [program, args before the mount point]. */
const TOOLS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['fusermount3', ['-uz']],
  ['fusermount', ['-uz']],
  ['umount', ['-l']],
];

/** True when `program` is an executable file in a directory of PATH. */
export function onPath(program: string, envPath = process.env.PATH ?? ''): boolean {
  for (const dir of envPath.split(':')) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The lazy-unmount commands available here, best first (umount -l is always a candidate). */
export function lazyUnmountCommands(mountpoint: string): Array<[string, string[]]> {
  const found = TOOLS.filter(([p]) => p === 'umount' || onPath(p));
  return found.map(([p, args]) => [p, [...args, mountpoint]]);
}

/** The FUSE helper that unmounts as a user: fusermount3 or fusermount, or undefined when neither is installed. */
export function fusermountProgram(): string | undefined {
  return ['fusermount3', 'fusermount'].find((p) => onPath(p));
}

export interface UnmountOutcome {
  ok: boolean;
  /** The command that succeeded, or the last one tried. */
  command: string;
  /** Why the last attempt failed (empty when ok). */
  error: string;
}

/** Lazily unmounts `mountpoint` with the first tool that succeeds (synchronous). */
export function lazyUnmountSync(mountpoint: string): UnmountOutcome {
  let last: UnmountOutcome = { ok: false, command: '', error: 'no unmount tool found' };
  for (const [cmd, args] of lazyUnmountCommands(mountpoint)) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30000 });
    const command = `${cmd} ${args.join(' ')}`;
    if (r.status === 0) return { ok: true, command, error: '' };
    last = { ok: false, command, error: (r.stderr || '').trim() || (r.error ? r.error.message : `exit status ${r.status}`) };
  }
  return last;
}

/** Like lazyUnmountSync, without blocking the event loop (a FUSE server must keep answering meanwhile). */
export async function lazyUnmount(mountpoint: string): Promise<UnmountOutcome> {
  let last: UnmountOutcome = { ok: false, command: '', error: 'no unmount tool found' };
  for (const [cmd, args] of lazyUnmountCommands(mountpoint)) {
    const command = `${cmd} ${args.join(' ')}`;
    const error = await new Promise<string>((resolve) =>
      execFile(cmd, args, { timeout: 30000 }, (err, _stdout, stderr) => resolve(err ? String(stderr).trim() || err.message : '')),
    );
    if (!error) return { ok: true, command, error: '' };
    last = { ok: false, command, error };
  }
  return last;
}
