/** Health data in SQLite (lib/store/health.ts, events.ts) read with its meaning: defaults, JSON summaries. */
import { excerpt } from '../errors.js';
import type { HistoryEvent, ScanStateRow, Store } from '../store/db.js';
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

/** No scan state: nothing scanned yet. */
function noScanState(): ScanState {
  return { cursorBlock: 0, passStartedAt: null, passesCompleted: 0, lastPassFinishedAt: null, maxBlockScanned: -1, nextDueAt: 0, lastSummary: null, currentSummary: null };
}

/** A stored summary is a few hundred bytes; a longer text is not parsed at all (bounded work). */
export const MAX_SUMMARY_JSON = 64 * 1024;

const SUMMARY_NUMBERS = ['startedAt', 'finishedAt', 'blocksScanned', 'bytesRead', 'unreadableBlocks', 'slowBlocks', 'criticalBlocks', 'remappedSlow'] as const;
const LATENCY_CLASSES = ['ok', 'warn', 'slow', 'critical'] as const;

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A time in ms since the epoch: the scheduler's due times are fractional (an interval of 0.001 hours is 3.6 s). */
const time = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
const shown = (v: unknown): string => (typeof v === 'string' ? `"${excerpt(v)}"` : excerpt(String(v)));

/** Why `v` (a parsed summary, or null) is not a ScanSummary, or undefined. */
function summaryProblem(what: string, v: unknown): string | undefined {
  if (v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) return `the ${what} pass summary is not an object`;
  const o = v as Record<string, unknown>;
  for (const k of SUMMARY_NUMBERS) if (!count(o[k])) return `the ${what} pass summary's ${k} is ${shown(o[k])}, not a non-negative integer`;
  const classes = o.latencyClasses;
  if (typeof classes !== 'object' || classes === null || Array.isArray(classes)) return `the ${what} pass summary has no latency classes`;
  for (const k of LATENCY_CLASSES) {
    const n = (classes as Record<string, unknown>)[k];
    if (!count(n)) return `the ${what} pass summary's latency class ${k} is ${shown(n)}, not a non-negative integer`;
  }
  return undefined;
}

/**
 * Why a stored scan_state row cannot be the scanner's progress on a device of `virtualBlocks` blocks, or
 * undefined. Every column is untrusted: counts are non-negative integers, times non-negative numbers, the cursor lies on the
 * device (0 to virtualBlocks) and so does the highest block scanned (-1 to virtualBlocks - 1), and the summaries
 * are JSON of at most MAX_SUMMARY_JSON characters holding {last, current}, each a summary or null.
 */
export function scanStateProblem(r: ScanStateRow, virtualBlocks: number): { problem: string } | { summaries: { last: ScanSummary | null; current: ScanSummary | null } } {
  const fail = (problem: string) => ({ problem });
  if (!count(r.cursorBlock) || r.cursorBlock > virtualBlocks) return fail(`cursor_block ${shown(r.cursorBlock)} is not a block of the device (0 to ${virtualBlocks})`);
  if (!Number.isSafeInteger(r.maxBlockScanned) || r.maxBlockScanned < -1 || r.maxBlockScanned >= virtualBlocks) {
    return fail(`max_block_scanned ${shown(r.maxBlockScanned)} is not a block of the device (-1 to ${virtualBlocks - 1})`);
  }
  if (!count(r.passesCompleted)) return fail(`passes_completed ${shown(r.passesCompleted)} is not a non-negative integer`);
  if (!time(r.nextDueAt)) return fail(`next_due_at ${shown(r.nextDueAt)} is not a time`);
  if (r.passStartedAt !== null && !time(r.passStartedAt)) return fail(`pass_started_at ${shown(r.passStartedAt)} is not a time`);
  if (r.lastPassFinishedAt !== null && !time(r.lastPassFinishedAt)) return fail(`last_pass_finished_at ${shown(r.lastPassFinishedAt)} is not a time`);
  if (r.summaries === null) return { summaries: { last: null, current: null } };
  if (typeof r.summaries !== 'string') return fail('last_summary is not text');
  if (r.summaries.length > MAX_SUMMARY_JSON) return fail(`last_summary is ${r.summaries.length} characters long (at most ${MAX_SUMMARY_JSON})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.summaries);
  } catch {
    return fail(`last_summary is not valid JSON (${shown(r.summaries)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('last_summary is not a JSON object');
  const { last = null, current = null } = parsed as { last?: unknown; current?: unknown };
  const bad = summaryProblem('last', last) ?? summaryProblem('current', current);
  if (bad) return fail(`last_summary: ${bad}`);
  return { summaries: { last: last as ScanSummary | null, current: current as ScanSummary | null } };
}

/**
 * The scanner's progress on pair `pairId` (a device of `virtualBlocks` blocks). A stored row that breaks a rule
 * (scanStateProblem) is read as no scan state, after one line to `warn` (by default the store's warnings): the
 * progress is a note for the scanner, not data, so a damaged one costs a pass, never a command. The next pass
 * writes a good row over it.
 */
export function loadScanState(store: Store, pairId: number, virtualBlocks: number, warn: (why: string) => void = (why) => store.warn(`ignoring the stored scan progress of pair #${pairId}: ${why}`)): ScanState {
  const r = store.health.scanState(pairId);
  if (!r) return noScanState();
  const checked = scanStateProblem(r, virtualBlocks);
  if ('problem' in checked) {
    warn(`${checked.problem}; the next scan starts a new pass`);
    return noScanState();
  }
  return {
    cursorBlock: r.cursorBlock,
    passStartedAt: r.passStartedAt,
    passesCompleted: r.passesCompleted,
    lastPassFinishedAt: r.lastPassFinishedAt,
    maxBlockScanned: r.maxBlockScanned,
    nextDueAt: r.nextDueAt,
    lastSummary: checked.summaries.last,
    currentSummary: checked.summaries.current,
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
