/**
 * Health state in SQLite, one row (or a few) per pair: settings (config, a
 * JSON value per key), the scanner's progress (scan_state, its summaries as
 * JSON), slow blocks (slow_blocks, one per main block) and what the last
 * report said (report_state). lib/health/history.ts gives them meaning
 * (defaults, JSON).
 *
 * Rows are untrusted. slow_blocks and report_state only feed reports: a bad
 * row is left out (slowBlockRowProblem, reportStateProblem) and the Store's
 * warning says so in one line. config drives the scanner: its rows are read
 * bounded here (known keys, short texts) and checked by history.ts, which
 * refuses a bad one (settingsError). scan_state is checked by history.ts too.
 */
import type { RemapfsError } from '../errors.js';
import { BEYOND_SAFE, badRowError, badRowsLine, isInteger, isTime, rangeProblem, rowBounds, type RowBounds, showValue, sqlBound, timeProblem } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

/** A config row as read: its key, its value's SQLite type and length, and its text (null when not text or too long). */
export interface ConfigRow {
  key: string;
  type: string;
  chars: number | null;
  value: string | null;
}

/** What to do about a bad config row. */
const SETTINGS_HINT = 'restore the database, or delete the bad rows from its config table: a setting without a row has its default';

/** The rule of a slow_blocks row (the columns read: block, latency_ms), in SQL. Parameters: main blocks. */
const GOOD_SLOW_SQL = `(typeof(block) = 'integer' AND block >= 0 AND block < ? AND typeof(latency_ms) IN ('integer', 'real') AND latency_ms >= 0 AND latency_ms < ${BEYOND_SAFE})`;

/** What is wrong with a slow_blocks row (block, latency_ms), or undefined: a block of the device, a latency in ms. */
export function slowBlockRowProblem(row: readonly unknown[], b: RowBounds): string | undefined {
  const [block, latency] = row;
  const blockBad = rangeProblem('block', block, 0, b.mainBlocks, 'device');
  if (blockBad) return blockBad;
  if (!isTime(latency)) return `block ${String(block)}: latency ${showValue(latency)} is not a number of ms (0 to 2^53-1)`;
  return undefined;
}

/** How far ahead of now a stored report time may be (a clock set back since). */
const CLOCK_SLACK_MS = 24 * 60 * 60 * 1000;

/**
 * What is wrong with a report_state row (reported_at, remap_events), or undefined: the report was made by `now` (a
 * time, not more than a day after it), and it saw at most the `remapEvents` remap events recorded now (the history only grows).
 */
export function reportStateProblem(row: readonly unknown[], now: number, remapEvents: number): string | undefined {
  const [reportedAt, seen] = row;
  const timeBad = timeProblem('reported_at', reportedAt);
  if (timeBad) return timeBad;
  // A clock set back a little (NTP, a reboot) must not make a good row bad; a day ahead is not a clock's drift.
  if ((reportedAt as number) > now + CLOCK_SLACK_MS) return `reported_at ${reportedAt as number} is more than a day after now (${now})`;
  if (!isInteger(seen) || seen < 0) return `remap_events ${showValue(seen)} is not a non-negative integer`;
  if (seen > remapEvents) return `remap_events ${seen} is more than the ${remapEvents} remap events recorded`;
  return undefined;
}

export interface ScanStateRow {
  cursorBlock: number;
  passStartedAt: number | null;
  passesCompleted: number;
  lastPassFinishedAt: number | null;
  maxBlockScanned: number;
  nextDueAt: number;
  /** JSON of the last and current pass summaries, or null. */
  summaries: string | null;
}

interface ScanStateColumns {
  cursor_block: number;
  pass_started_at: number | null;
  passes_completed: number;
  last_pass_finished_at: number | null;
  max_block_scanned: number;
  next_due_at: number;
  last_summary: string | null;
}

export class HealthRepo {
  constructor(
    private readonly db: SqliteDatabase,
    /** Where a reader says, in one line, that it left bad rows out (the Store's warning). */
    private readonly warn: (line: string) => void = () => undefined,
  ) {}

  /**
   * The pair's stored settings of the given keys (others, such as a later version's, are not read), by key: the text
   * only when it is text of at most `maxChars` characters, so no row makes this read more.
   */
  config(pairId: number, keys: readonly string[], maxChars: number): ConfigRow[] {
    if (keys.length === 0) return [];
    return this.db
      .prepare<[number, number, ...string[]], ConfigRow>(
        `SELECT key, typeof(value) AS type, length(value) AS chars, CASE WHEN typeof(value) = 'text' AND length(value) <= ? THEN value END AS value
         FROM config WHERE pair_id = ? AND key IN (${keys.map(() => '?').join(', ')}) ORDER BY key`,
      )
      .all(maxChars, pairId, ...keys);
  }

  /** The one-line refusal of a bad config row (or of settings that do not fit together). */
  settingsError(pairId: number, problem: string): RemapfsError {
    return badRowError('settings', rowBounds(this.db, pairId), problem, SETTINGS_HINT);
  }

  setConfig(pairId: number, key: string, valueJson: string): void {
    this.db.prepare<[number, string, string]>('INSERT OR REPLACE INTO config (pair_id, key, value) VALUES (?, ?, ?)').run(pairId, key, valueJson);
  }

  scanState(pairId: number): ScanStateRow | undefined {
    const r = this.db.prepare<[number], ScanStateColumns>('SELECT * FROM scan_state WHERE pair_id = ?').get(pairId);
    if (!r) return undefined;
    return {
      cursorBlock: r.cursor_block,
      passStartedAt: r.pass_started_at,
      passesCompleted: r.passes_completed,
      lastPassFinishedAt: r.last_pass_finished_at,
      maxBlockScanned: r.max_block_scanned,
      nextDueAt: r.next_due_at,
      summaries: r.last_summary,
    };
  }

  putScanState(pairId: number, s: ScanStateRow): void {
    this.db
      .prepare<[number, number, number | null, number, number | null, number, number, string | null]>(
        `INSERT OR REPLACE INTO scan_state (pair_id, cursor_block, pass_started_at, passes_completed, last_pass_finished_at, max_block_scanned, next_due_at, last_summary)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(pairId, s.cursorBlock, s.passStartedAt, s.passesCompleted, s.lastPassFinishedAt, s.maxBlockScanned, s.nextDueAt, s.summaries);
  }

  putSlowBlock(pairId: number, block: number, latencyMs: number, time: number): void {
    this.db.prepare<[number, number, number, number]>('INSERT OR REPLACE INTO slow_blocks (pair_id, block, latency_ms, time) VALUES (?, ?, ?, ?)').run(pairId, block, latencyMs, time);
  }

  clearSlowBlocks(pairId: number, firstBlock: number, endBlock: number): void {
    this.db.prepare<[number, number, number]>('DELETE FROM slow_blocks WHERE pair_id = ? AND block >= ? AND block < ?').run(pairId, firstBlock, endBlock);
  }

  /**
   * Slow blocks that are not remapped, by block. Rows that break slowBlockRowProblem are left out, with one warning;
   * so at most one row per block of the device is handed out.
   */
  slowBlocks(pairId: number): Array<{ block: number; latencyMs: number }> {
    const bounds = rowBounds(this.db, pairId);
    const mainBlocks = sqlBound(bounds.mainBlocks);
    const bad = this.db.prepare<[number, number]>(`SELECT block, latency_ms FROM slow_blocks WHERE pair_id = ? AND NOT coalesce(${GOOD_SLOW_SQL}, 0) LIMIT 1`).raw<unknown[]>().get(pairId, mainBlocks);
    if (bad) {
      const count = this.db.prepare<[number, number]>(`SELECT count(*) FROM slow_blocks WHERE pair_id = ? AND NOT coalesce(${GOOD_SLOW_SQL}, 0)`).pluck<number>().get(pairId, mainBlocks) as number;
      this.warn(badRowsLine(bounds, 'slow block', count, slowBlockRowProblem(bad, bounds) ?? 'a value is out of range'));
    }
    return this.db
      .prepare<[number, number]>(
        `SELECT s.block, s.latency_ms FROM slow_blocks s WHERE s.pair_id = ? AND coalesce(${GOOD_SLOW_SQL}, 0)
         AND NOT EXISTS (SELECT 1 FROM remaps r WHERE r.pair_id = s.pair_id AND r.main_block = s.block AND r.state = 'remapped') ORDER BY s.block`,
      )
      .raw<[number, number]>()
      .all(pairId, mainBlocks)
      .map(([block, latencyMs]) => ({ block, latencyMs }));
  }

  /**
   * What the last report saw, checked against `now` and the `remapEvents` recorded now (reportStateProblem). A bad row
   * is read as none, with one warning: the remaps are then counted since the pair was made (reported again, never
   * hidden), and the report writes a good row.
   */
  reportState(pairId: number, now: number, remapEvents: number): { reportedAt: number; remapEvents: number } | undefined {
    const r = this.db.prepare<[number]>('SELECT reported_at, remap_events FROM report_state WHERE pair_id = ?').raw<unknown[]>().get(pairId);
    if (!r) return undefined;
    const problem = reportStateProblem(r, now, remapEvents);
    if (problem) {
      this.warn(`pair ${rowBounds(this.db, pairId).name}: ignoring the stored state of the last report: ${problem}; new remaps are counted since the pair was made`);
      return undefined;
    }
    return { reportedAt: r[0] as number, remapEvents: r[1] as number };
  }

  putReportState(pairId: number, reportedAt: number, remapEvents: number): void {
    this.db.prepare<[number, number, number]>('INSERT OR REPLACE INTO report_state (pair_id, reported_at, remap_events) VALUES (?, ?, ?)').run(pairId, reportedAt, remapEvents);
  }
}
