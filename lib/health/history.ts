/** Health data in SQLite: settings, scan progress, slow blocks, report state and event history. */
import { Store } from '../store/db';
import { DEFAULT_CONFIG, isConfigKey, PairConfig, parseConfigValue } from './config';

export interface ScanState {
  cursorBlock: number;
  passStartedAt: number | null;
  passesCompleted: number;
  lastPassFinishedAt: number | null;
  maxBlockScanned: number;
  nextDueAt: number;
  /** The last finished pass. */
  lastSummary: ScanSummary | null;
  /** The pass in progress (counts so far), when passStartedAt is set. */
  currentSummary: ScanSummary | null;
}

export interface ScanSummary {
  startedAt: number;
  finishedAt: number;
  blocksScanned: number;
  bytesRead: number;
  unreadableBlocks: number;
  slowBlocks: number;
  criticalBlocks: number;
  remappedSlow: number;
  /** Blocks by read latency: below warn, warn..remap, remap..critical, critical and above. */
  latencyClasses: { ok: number; warn: number; slow: number; critical: number };
}

export function loadConfig(store: Store, pairId: number): PairConfig {
  const rows = store.db.prepare('SELECT key, value FROM config WHERE pair_id = ?').all(pairId) as Array<{ key: string; value: string }>;
  const c: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const r of rows) {
    if (!isConfigKey(r.key)) continue;
    try {
      c[r.key] = parseConfigValue(r.key, JSON.parse(r.value));
    } catch {
      // a value this version cannot read: the default stands
    }
  }
  return c as unknown as PairConfig;
}

export function saveConfig(store: Store, pairId: number, changes: Partial<PairConfig>): void {
  store.transaction(() => {
    for (const [k, v] of Object.entries(changes)) {
      store.db.prepare('INSERT OR REPLACE INTO config (pair_id, key, value) VALUES (?, ?, ?)').run(pairId, k, JSON.stringify(v));
    }
  });
}

export function loadScanState(store: Store, pairId: number): ScanState {
  const r = store.db.prepare('SELECT * FROM scan_state WHERE pair_id = ?').get(pairId) as
    | { cursor_block: number; pass_started_at: number | null; passes_completed: number; last_pass_finished_at: number | null; max_block_scanned: number; next_due_at: number; last_summary: string | null }
    | undefined;
  if (!r) return { cursorBlock: 0, passStartedAt: null, passesCompleted: 0, lastPassFinishedAt: null, maxBlockScanned: -1, nextDueAt: 0, lastSummary: null, currentSummary: null };
  const summaries = r.last_summary ? (JSON.parse(r.last_summary) as { last: ScanSummary | null; current: ScanSummary | null }) : { last: null, current: null };
  return {
    cursorBlock: r.cursor_block,
    passStartedAt: r.pass_started_at,
    passesCompleted: r.passes_completed,
    lastPassFinishedAt: r.last_pass_finished_at,
    maxBlockScanned: r.max_block_scanned,
    nextDueAt: r.next_due_at,
    lastSummary: summaries.last,
    currentSummary: summaries.current,
  };
}

export function saveScanState(store: Store, pairId: number, s: ScanState): void {
  store.db
    .prepare(
      `INSERT OR REPLACE INTO scan_state (pair_id, cursor_block, pass_started_at, passes_completed, last_pass_finished_at, max_block_scanned, next_due_at, last_summary)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(pairId, s.cursorBlock, s.passStartedAt, s.passesCompleted, s.lastPassFinishedAt, s.maxBlockScanned, s.nextDueAt, JSON.stringify({ last: s.lastSummary, current: s.currentSummary }));
}

export function putSlowBlock(store: Store, pairId: number, block: number, latencyMs: number, time: number): void {
  store.db.prepare('INSERT OR REPLACE INTO slow_blocks (pair_id, block, latency_ms, time) VALUES (?, ?, ?, ?)').run(pairId, block, latencyMs, time);
}

export function clearSlowBlock(store: Store, pairId: number, block: number): void {
  store.db.prepare('DELETE FROM slow_blocks WHERE pair_id = ? AND block = ?').run(pairId, block);
}

/** Slow blocks that are not remapped. */
export function slowBlocks(store: Store, pairId: number): Array<{ block: number; latencyMs: number }> {
  return (
    store.db
      .prepare("SELECT s.block, s.latency_ms FROM slow_blocks s WHERE s.pair_id = ? AND NOT EXISTS (SELECT 1 FROM remaps r WHERE r.pair_id = s.pair_id AND r.main_block = s.block AND r.state = 'remapped') ORDER BY s.block")
      .raw()
      .all(pairId) as Array<[number, number]>
  ).map(([block, latencyMs]) => ({ block, latencyMs }));
}

/** Times of remap events (not retirements) since `since`. */
export function remapTimes(store: Store, pairId: number, since: number): number[] {
  return store.db.prepare("SELECT time FROM events WHERE pair_id = ? AND kind = 'remap' AND time >= ? ORDER BY time").pluck().all(pairId, since) as number[];
}

export function remapEventCount(store: Store, pairId: number): number {
  return store.db.prepare("SELECT count(*) FROM events WHERE pair_id = ? AND kind = 'remap'").pluck().get(pairId) as number;
}

export function loadReportState(store: Store, pairId: number): { reportedAt: number; remapEvents: number } | undefined {
  const r = store.db.prepare('SELECT reported_at, remap_events FROM report_state WHERE pair_id = ?').get(pairId) as { reported_at: number; remap_events: number } | undefined;
  return r ? { reportedAt: r.reported_at, remapEvents: r.remap_events } : undefined;
}

export function saveReportState(store: Store, pairId: number, reportedAt: number, remapEvents: number): void {
  store.db.prepare('INSERT OR REPLACE INTO report_state (pair_id, reported_at, remap_events) VALUES (?, ?, ?)').run(pairId, reportedAt, remapEvents);
}

export interface HistoryEvent {
  time: number;
  kind: string;
  block: number | null;
  value: number | null;
  detail: string | null;
}

export function recentEvents(store: Store, pairId: number, limit: number): HistoryEvent[] {
  return store.db.prepare('SELECT time, kind, block, value, detail FROM events WHERE pair_id = ? ORDER BY id DESC LIMIT ?').all(pairId, limit) as HistoryEvent[];
}
