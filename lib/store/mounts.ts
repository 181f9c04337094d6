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
      .filter((m) => processAlive(m.pid));
  }
}

function mountFromRow(r: MountRow): MountRecord {
  return { mountpoint: r.mountpoint, pid: r.pid, socket: r.socket, startedAt: r.started_at };
}

/** True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
