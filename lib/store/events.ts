/**
 * The events table: a pair's history (remaps, retirements, pending blocks,
 * scan passes, settings), appended in id order and never rewritten. The
 * health score's trend reads the times of 'remap' events.
 */
import type { SqliteDatabase } from './sqlite.js';

export interface HistoryEvent {
  time: number;
  kind: string;
  block: number | null;
  value: number | null;
  detail: string | null;
}

export class EventRepo {
  constructor(private readonly db: SqliteDatabase) {}

  add(pairId: number, time: number, kind: string, block: number | null, value: number | null, detail: string | null): void {
    this.db
      .prepare<[number, number, string, number | null, number | null, string | null]>('INSERT INTO events (pair_id, time, kind, block, value, detail) VALUES (?, ?, ?, ?, ?, ?)')
      .run(pairId, time, kind, block, value, detail);
  }

  /** As add() for many events, in order, with one prepared statement (an import rebuilding the history, a chunk at a time). */
  addMany(pairId: number, events: readonly HistoryEvent[]): void {
    const stmt = this.db.prepare<[number, number, string, number | null, number | null, string | null]>('INSERT INTO events (pair_id, time, kind, block, value, detail) VALUES (?, ?, ?, ?, ?, ?)');
    for (const e of events) stmt.run(pairId, e.time, e.kind, e.block, e.value, e.detail);
  }

  /** The newest `limit` events, newest first. */
  recent(pairId: number, limit: number): HistoryEvent[] {
    return this.db.prepare<[number, number], HistoryEvent>('SELECT time, kind, block, value, detail FROM events WHERE pair_id = ? ORDER BY id DESC LIMIT ?').all(pairId, limit);
  }

  /** Times of remap events (not retirements) since `since`, oldest first. */
  remapTimes(pairId: number, since: number): number[] {
    return this.db.prepare<[number, number]>("SELECT time FROM events WHERE pair_id = ? AND kind = 'remap' AND time >= ? ORDER BY time").pluck<number>().all(pairId, since);
  }

  remapCount(pairId: number): number {
    return this.db.prepare<[number]>("SELECT count(*) FROM events WHERE pair_id = ? AND kind = 'remap'").pluck<number>().get(pairId) as number;
  }
}
