/**
 * Health state in SQLite, one row (or a few) per pair: settings (config, a
 * JSON value per key), the scanner's progress (scan_state, its summaries as
 * JSON), slow blocks (slow_blocks, one per main block) and what the last
 * report said (report_state). Rows are stored and returned as they are;
 * lib/health/history.ts gives them meaning (defaults, JSON).
 */
import type { SqliteDatabase } from './sqlite.js';

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
  constructor(private readonly db: SqliteDatabase) {}

  /** The pair's settings as stored: key and JSON text. */
  config(pairId: number): Array<{ key: string; value: string }> {
    return this.db.prepare<[number], { key: string; value: string }>('SELECT key, value FROM config WHERE pair_id = ?').all(pairId);
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

  clearSlowBlock(pairId: number, block: number): void {
    this.db.prepare<[number, number]>('DELETE FROM slow_blocks WHERE pair_id = ? AND block = ?').run(pairId, block);
  }

  /** Slow blocks that are not remapped, by block. */
  slowBlocks(pairId: number): Array<{ block: number; latencyMs: number }> {
    return this.db
      .prepare<[number]>(
        "SELECT s.block, s.latency_ms FROM slow_blocks s WHERE s.pair_id = ? AND NOT EXISTS (SELECT 1 FROM remaps r WHERE r.pair_id = s.pair_id AND r.main_block = s.block AND r.state = 'remapped') ORDER BY s.block",
      )
      .raw<[number, number]>()
      .all(pairId)
      .map(([block, latencyMs]) => ({ block, latencyMs }));
  }

  reportState(pairId: number): { reportedAt: number; remapEvents: number } | undefined {
    const r = this.db.prepare<[number], { reported_at: number; remap_events: number }>('SELECT reported_at, remap_events FROM report_state WHERE pair_id = ?').get(pairId);
    return r ? { reportedAt: r.reported_at, remapEvents: r.remap_events } : undefined;
  }

  putReportState(pairId: number, reportedAt: number, remapEvents: number): void {
    this.db.prepare<[number, number, number]>('INSERT OR REPLACE INTO report_state (pair_id, reported_at, remap_events) VALUES (?, ?, ?)').run(pairId, reportedAt, remapEvents);
  }
}
