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

  /**
   * One event per remap of the pair, as its commit would have added it (an
   * import: the remap times rebuild the trend), oldest first; one statement,
   * run inside SQLite.
   */
  addFromRemaps(pairId: number): void {
    this.db
      .prepare<[number]>(
        `INSERT INTO events (pair_id, time, kind, block, value, detail)
         SELECT pair_id, created_at, CASE WHEN state = 'pending' THEN 'pending' WHEN reason = 'label' THEN 'label' ELSE 'remap' END, main_block, ifnull(spare_block, -1), reason
         FROM remaps WHERE pair_id = ? ORDER BY created_at, main_block`,
      )
      .run(pairId);
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
