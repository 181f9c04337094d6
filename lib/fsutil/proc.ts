/**
 * Which remapfs command a process runs, from /proc/<pid>/cmdline: the program
 * is the first argument ending in `remapfs` (or `remapfs.js`), and the
 * command the first argument after it that is not an option or an option's
 * value (`remapfs --db X mount /srv` runs `mount`). Read only; a process that
 * is gone or not remapfs gives undefined.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface RemapfsProcess {
  /** The command: 'mount', 'simulate', ... ('' when none was given). */
  command: string;
  /** The program and what follows it, for messages. */
  args: string[];
}

export function remapfsProcess(pid: number): RemapfsProcess | undefined {
  let all: string[];
  try {
    all = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
  const bin = all.findIndex((a) => /remapfs(\.js)?$/.test(a));
  if (bin < 0) return undefined;
  const rest = all.slice(bin + 1);
  let i = 0;
  while (i < rest.length && rest[i]?.startsWith('-')) i += rest[i]?.includes('=') || rest[i] === '--' ? 1 : 2;
  return { command: rest[i] ?? '', args: all.slice(bin) };
}

/** The commands of a remapfs daemon (`mount`, `simulate`), which hold their devices for as long as they run. */
export function isDaemonCommand(command: string): boolean {
  return command === 'mount' || command === 'simulate';
}

/**
 * True when `pid` runs `remapfs mount` on `mountpoint` (an absolute path): an argument after the command, taken
 * relative to the process's working directory, names it. Options' values never name a directory that is mounted on.
 */
export function servesMountpoint(pid: number, mountpoint: string): boolean {
  const p = remapfsProcess(pid);
  if (p?.command !== 'mount') return false;
  let cwd: string;
  try {
    cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return false;
  }
  const after = p.args.slice(p.args.indexOf('mount') + 1);
  return after.some((a) => !a.startsWith('-') && path.resolve(cwd, a) === mountpoint);
}
