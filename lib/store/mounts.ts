/**
 * The mounts table: one row per mountpoint served by a daemon (its pid and
 * control socket). A row can outlive its daemon (a crash); live() filters
 * those out, and recover/unmount remove them.
 *
 * Rows are untrusted: a row decides which process is signalled (kill(pid, 0)),
 * which socket a command sends its requests to, and whether `mount` may
 * start, so every row read is checked (mountRowProblem) and a bad one is
 * refused with one line. A daemon writes a good row of its own.
 */
import * as fs from 'fs';
import { RemapfsError } from '../errors.js';
import { servesMountpoint } from '../fsutil/proc.js';
import { absolutePathProblem, processRowProblem, showValue } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

export interface MountRecord {
  mountpoint: string;
  pid: number;
  socket: string;
  startedAt: number;
}

/** A mounts row as SQLite returns it (any type in any column). */
export interface MountRow {
  mountpoint: unknown;
  pid: unknown;
  socket: unknown;
  started_at: unknown;
}

/** The longest path of a mountpoint (PATH_MAX, its NUL left out). */
const MAX_MOUNTPOINT_BYTES = 4095;
/** The longest path of a Unix socket (sun_path holds 108 bytes, its NUL included). */
const MAX_SOCKET_BYTES = 107;

/** What to do about a bad mounts row. */
const MOUNT_ROW_HINT = 'restore the database, or delete that row from its mounts table: a running daemon keeps a good row of its own';

/**
 * What is wrong with a mounts row (pure), or undefined: the mountpoint and the socket are absolute, normalized paths
 * (the socket short enough for a Unix socket), the pid is one a process can have (1 to 4194303), and started_at is
 * whole ms since the epoch.
 */
export function mountRowProblem(r: MountRow): string | undefined {
  return (
    absolutePathProblem('mountpoint', r.mountpoint, MAX_MOUNTPOINT_BYTES) ?? processRowProblem(r.pid, r.started_at) ?? absolutePathProblem('socket', r.socket, MAX_SOCKET_BYTES)
  );
}

export class MountRepo {
  constructor(private readonly db: SqliteDatabase) {}

  put(m: MountRecord): void {
    this.db.prepare<[string, number, string, number]>('INSERT OR REPLACE INTO mounts (mountpoint, pid, socket, started_at) VALUES (?, ?, ?, ?)').run(m.mountpoint, m.pid, m.socket, m.startedAt);
  }

  /** The row for `mountpoint`, whether or not its daemon still runs. */
  get(mountpoint: string): MountRecord | undefined {
    const r = this.db.prepare<[string], MountRow>('SELECT mountpoint, pid, socket, started_at FROM mounts WHERE mountpoint = ?').get(mountpoint);
    return r ? mountFromRow(r) : undefined;
  }

  /** Removes the row of the daemon `pid` at `mountpoint` (a newer daemon's row stays). */
  delete(mountpoint: string, pid: number): void {
    this.db.prepare<[string, number]>('DELETE FROM mounts WHERE mountpoint = ? AND pid = ?').run(mountpoint, pid);
  }

  /** Removes the row for `mountpoint`, whichever daemon it names. */
  forget(mountpoint: string): void {
    this.db.prepare<[string]>('DELETE FROM mounts WHERE mountpoint = ?').run(mountpoint);
  }

  /** Mount records whose daemon process is still alive. */
  live(): MountRecord[] {
    return this.db
      .prepare<[], MountRow>('SELECT mountpoint, pid, socket, started_at FROM mounts')
      .all()
      .map(mountFromRow)
      .filter((m) => processAlive(m.pid, m.startedAt, m.mountpoint));
  }
}

/** A mounts row as a MountRecord; a row that fails mountRowProblem is refused with one line. */
function mountFromRow(r: MountRow): MountRecord {
  const problem = mountRowProblem(r);
  if (problem) throw new RemapfsError('read database', `mounts row ${showValue(r.mountpoint)}`, `invalid row: ${problem}`, MOUNT_ROW_HINT);
  return { mountpoint: r.mountpoint as string, pid: r.pid as number, socket: r.socket as string, startedAt: r.started_at as number };
}

/** The kernel's USER_HZ, the unit of /proc/<pid>/stat's start time: 100 on every Linux architecture remapfs runs on. */
const USER_HZ = 100;

/**
 * True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone. With `startedBeforeMs`
 * (a time the process wrote down, such as a mounts row's started_at), a process that started after it is
 * another one that got the pid (after a reboot or a crash, pids come round again) and counts as gone too, unless it
 * runs `remapfs mount` on `mountpoint` (the row's own daemon: the clock may have been set forward since it wrote it).
 */
export function processAlive(pid: number, startedBeforeMs?: number, mountpoint?: string): boolean {
  // 0 and below name process groups (or every process) to kill(2), not a process.
  if (!Number.isSafeInteger(pid) || pid < 1) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return false;
    if (startedBeforeMs === undefined) return true;
    const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1];
    const startTicks = Number(fields[19]); // field 22, starttime
    if (btime === undefined || !Number.isFinite(startTicks)) return true;
    const startedAtMs = Number(btime) * 1000 + (startTicks * 1000) / USER_HZ;
    if (startedAtMs <= startedBeforeMs + 2000) return true; // btime is whole seconds
    // btime moves with the wall clock: a clock stepped forward since the row was written (NTP at boot) makes its own
    // daemon look younger than the row. It is still that daemon only if it serves the row's mountpoint.
    return mountpoint !== undefined && servesMountpoint(pid, mountpoint);
  } catch {
    return false;
  }
}
