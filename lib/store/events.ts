/**
 * The events table: a pair's history (remaps, retirements, pending blocks,
 * scan passes, settings), appended in id order and never rewritten. The
 * health score's trend counts 'remap' events per day (remapDays).
 *
 * Rows are untrusted and only feed reports: a row that breaks the rule of
 * the columns read (a time that is not a time; for recent(), also a kind,
 * block, value or detail of the wrong type or too long) is left out, and the
 * Store's warning says so in one line. The remap readers count and bucket in
 * SQL, so a table of any size costs no memory here.
 */
import { badRowsLine, rowBounds, showValue, timeProblem, timeSql } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

export interface HistoryEvent {
  time: number;
  kind: string;
  block: number | null;
  value: number | null;
  detail: string | null;
}

/** The longest kind and detail recent() hands out (a scan's summary, the longest detail remapfs writes, is a few hundred bytes). */
export const MAX_EVENT_KIND = 64;
export const MAX_EVENT_DETAIL = 64 * 1024;

const DAY_MS = 24 * 60 * 60 * 1000;

/** The rule of a remap event's time (the only column the remap readers read), in SQL. */
const GOOD_REMAP_SQL = timeSql('time');

/** The rule of a whole row (recent()), in SQL; eventRowProblem in JavaScript. */
const GOOD_EVENT_SQL = `(${timeSql('time')} AND typeof(kind) = 'text' AND length(kind) <= ${MAX_EVENT_KIND}
  AND (block IS NULL OR typeof(block) = 'integer') AND (value IS NULL OR (typeof(value) IN ('integer', 'real') AND abs(value) <= 1.7976931348623157e308))
  AND (detail IS NULL OR (typeof(detail) = 'text' AND length(detail) <= ${MAX_EVENT_DETAIL})))`;

/** What is wrong with an events row (time, kind, block, value, detail as SQLite returns them; detail's length instead of detail), or undefined. */
export function eventRowProblem(row: readonly unknown[]): string | undefined {
  const [time, kind, block, value, detailType, detailChars] = row;
  const timeBad = timeProblem('time', time);
  if (timeBad) return timeBad;
  if (typeof kind !== 'string') return `kind ${showValue(kind)} is not text`;
  if ([...kind].length > MAX_EVENT_KIND) return `kind ${showValue(kind)} is longer than ${MAX_EVENT_KIND} characters`;
  if (block !== null && !(typeof block === 'number' && Number.isSafeInteger(block))) return `block ${showValue(block)} is not an integer`;
  if (value !== null && !(typeof value === 'number' && Number.isFinite(value))) return `value ${showValue(value)} is not a number`;
  if (detailType !== 'null' && detailType !== 'text') return `detail is a ${String(detailType)}, not text`;
  if (typeof detailChars === 'number' && detailChars > MAX_EVENT_DETAIL) return `detail is ${detailChars} characters long (at most ${MAX_EVENT_DETAIL})`;
  return undefined;
}

export class EventRepo {
  constructor(
    private readonly db: SqliteDatabase,
    /** Where a reader says, in one line, that it left bad rows out (the Store's warning). */
    private readonly warn: (line: string) => void = () => undefined,
  ) {}

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

  /** The newest `limit` good events, newest first; bad rows are left out, with one warning. */
  recent(pairId: number, limit: number): HistoryEvent[] {
    const bad = this.db
      .prepare<[number]>(`SELECT time, kind, block, value, typeof(detail), length(detail) FROM events WHERE pair_id = ? AND NOT coalesce(${GOOD_EVENT_SQL}, 0) LIMIT 1`)
      .raw<unknown[]>()
      .get(pairId);
    if (bad) {
      const count = this.db.prepare<[number]>(`SELECT count(*) FROM events WHERE pair_id = ? AND NOT coalesce(${GOOD_EVENT_SQL}, 0)`).pluck<number>().get(pairId) as number;
      this.warn(badRowsLine(rowBounds(this.db, pairId), 'event', count, eventRowProblem(bad) ?? 'a value is out of range'));
    }
    return this.db
      .prepare<[number, number], HistoryEvent>(`SELECT time, kind, block, value, detail FROM events WHERE pair_id = ? AND coalesce(${GOOD_EVENT_SQL}, 0) ORDER BY id DESC LIMIT ?`)
      .all(pairId, limit);
  }

  /**
   * Good remap events per day for the `days` days that end at `now`, oldest first (an event at age
   * floor((now - time) / 1 day) from 0 to days - 1 counts), counted by SQLite.
   */
  remapDays(pairId: number, now: number, days: number): number[] {
    this.checkRemapRows(pairId);
    const counts = new Array<number>(days).fill(0);
    const rows = this.db
      .prepare<[number, number, number, number]>(
        `SELECT CAST((? - time) / ${DAY_MS}.0 AS INTEGER) AS age, count(*) FROM events WHERE pair_id = ? AND kind = 'remap' AND ${GOOD_REMAP_SQL} AND time <= ? AND time > ? GROUP BY age`,
      )
      .raw<[number, number]>()
      .all(now, pairId, now, now - days * DAY_MS);
    for (const [age, n] of rows) if (age >= 0 && age < days) counts[days - 1 - age] = n;
    return counts;
  }

  /** Good remap events (not retirements). */
  remapCount(pairId: number): number {
    this.checkRemapRows(pairId);
    return this.db.prepare<[number]>(`SELECT count(*) FROM events WHERE pair_id = ? AND kind = 'remap' AND ${GOOD_REMAP_SQL}`).pluck<number>().get(pairId) as number;
  }

  /** Warns (one line) when remap events have a time that is not a time: the remap readers leave them out. */
  private checkRemapRows(pairId: number): void {
    const where = `pair_id = ? AND kind = 'remap' AND NOT coalesce(${GOOD_REMAP_SQL}, 0)`;
    const bad = this.db.prepare<[number]>(`SELECT time FROM events WHERE ${where} LIMIT 1`).raw<[unknown]>().get(pairId);
    if (!bad) return;
    const count = this.db.prepare<[number]>(`SELECT count(*) FROM events WHERE ${where}`).pluck<number>().get(pairId) as number;
    this.warn(badRowsLine(rowBounds(this.db, pairId), 'remap event', count, timeProblem('time', bad[0]) ?? 'a value is out of range'));
  }
}
