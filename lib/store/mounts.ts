/**
 * The mounts table: one row per mountpoint served by a daemon (its pid and
 * control socket). A row can outlive its daemon (a crash); live() filters
 * those out, and recover/unmount remove them.
 */
import * as fs from 'fs';
import type { SqliteDatabase } from './sqlite.js';

export interface MountRecord {
  mountpoint: string;
  pid: number;
  socket: string;
  startedAt: number;
}

interface MountRow {
  mountpoint: string;
  pid: number;
  socket: string;
  started_at: number;
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
      .filter((m) => processAlive(m.pid, m.startedAt));
  }
}

function mountFromRow(r: MountRow): MountRecord {
  return { mountpoint: r.mountpoint, pid: r.pid, socket: r.socket, startedAt: r.started_at };
}

/** The kernel's USER_HZ, the unit of /proc/<pid>/stat's start time: 100 on every Linux architecture remapfs runs on. */
const USER_HZ = 100;

/**
 * True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone. With `startedBeforeMs`
 * (a time the process wrote down, such as a mounts row's started_at), a process that started after it is
 * another one that got the pid (after a reboot or a crash, pids come round again) and counts as gone too.
 */
export function processAlive(pid: number, startedBeforeMs?: number): boolean {
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
    return startedAtMs <= startedBeforeMs + 2000; // btime is whole seconds
  } catch {
    return false;
  }
}
