/** Health data in SQLite (lib/store/health.ts, events.ts) read with its meaning: defaults, JSON summaries. */
import type { HistoryEvent, Store } from '../store/db.js';
import { DEFAULT_CONFIG, isConfigKey, type PairConfig, parseConfigValue } from './config.js';

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
  const c: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const r of store.health.config(pairId)) {
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
    for (const [k, v] of Object.entries(changes)) store.health.setConfig(pairId, k, JSON.stringify(v));
  });
}

export function loadScanState(store: Store, pairId: number): ScanState {
  const r = store.health.scanState(pairId);
  if (!r) return { cursorBlock: 0, passStartedAt: null, passesCompleted: 0, lastPassFinishedAt: null, maxBlockScanned: -1, nextDueAt: 0, lastSummary: null, currentSummary: null };
  const summaries = r.summaries ? (JSON.parse(r.summaries) as { last: ScanSummary | null; current: ScanSummary | null }) : { last: null, current: null };
  return {
    cursorBlock: r.cursorBlock,
    passStartedAt: r.passStartedAt,
    passesCompleted: r.passesCompleted,
    lastPassFinishedAt: r.lastPassFinishedAt,
    maxBlockScanned: r.maxBlockScanned,
    nextDueAt: r.nextDueAt,
    lastSummary: summaries.last,
    currentSummary: summaries.current,
  };
}

export function saveScanState(store: Store, pairId: number, s: ScanState): void {
  store.health.putScanState(pairId, {
    cursorBlock: s.cursorBlock,
    passStartedAt: s.passStartedAt,
    passesCompleted: s.passesCompleted,
    lastPassFinishedAt: s.lastPassFinishedAt,
    maxBlockScanned: s.maxBlockScanned,
    nextDueAt: s.nextDueAt,
    summaries: JSON.stringify({ last: s.lastSummary, current: s.currentSummary }),
  });
}

export function putSlowBlock(store: Store, pairId: number, block: number, latencyMs: number, time: number): void {
  store.health.putSlowBlock(pairId, block, latencyMs, time);
}

export function clearSlowBlock(store: Store, pairId: number, block: number): void {
  store.health.clearSlowBlock(pairId, block);
}

/** Slow blocks that are not remapped. */
export function slowBlocks(store: Store, pairId: number): Array<{ block: number; latencyMs: number }> {
  return store.health.slowBlocks(pairId);
}

/** Times of remap events (not retirements) since `since`. */
export function remapTimes(store: Store, pairId: number, since: number): number[] {
  return store.events.remapTimes(pairId, since);
}

export function remapEventCount(store: Store, pairId: number): number {
  return store.events.remapCount(pairId);
}

export function loadReportState(store: Store, pairId: number): { reportedAt: number; remapEvents: number } | undefined {
  return store.health.reportState(pairId);
}

export function saveReportState(store: Store, pairId: number, reportedAt: number, remapEvents: number): void {
  store.health.putReportState(pairId, reportedAt, remapEvents);
}

export type { HistoryEvent } from '../store/db.js';

export function recentEvents(store: Store, pairId: number, limit: number): HistoryEvent[] {
  return store.events.recent(pairId, limit);
}
