/** Health data in SQLite (lib/store/health.ts, events.ts) read with its meaning: defaults, JSON summaries. */
import { excerpt } from '../errors.js';
import type { ConfigRow, HistoryEvent, ScanStateRow, Store } from '../store/db.js';
import { checkConfig, CONFIG_KEYS, DEFAULT_CONFIG, type PairConfig, parseConfigValue } from './config.js';

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

/** A stored setting is the JSON of a number or a boolean, a few characters; a longer text is not parsed at all (bounded work). */
export const MAX_SETTING_JSON = 64;

/**
 * The value of a stored setting (a config row of a known key), or why it is bad: JSON text of at most
 * MAX_SETTING_JSON characters holding a value that the config command would take for that key (parseConfigValue:
 * its range, a whole number where the setting needs one).
 */
export function settingOf(r: ConfigRow): { value: PairConfig[keyof PairConfig] } | { problem: string } {
  const key = r.key;
  if (r.type !== 'text') return { problem: `setting ${key} is ${r.type === 'null' ? 'NULL' : r.type === 'integer' ? 'an integer' : `a ${r.type}`}, not JSON text` };
  if (r.value === null) return { problem: `setting ${key} is ${String(r.chars)} characters long (at most ${MAX_SETTING_JSON})` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.value);
  } catch {
    return { problem: `setting ${key} is not valid JSON: ${excerpt(r.value)}` };
  }
  if (typeof parsed !== 'number' && typeof parsed !== 'boolean' && typeof parsed !== 'string') return { problem: `setting ${key} is ${excerpt(r.value)}, not a number, true or false` };
  try {
    return { value: parseConfigValue(key, parsed) };
  } catch (err) {
    // "scanChunkKiB must be a number from 4 to 65536 in plain decimal, got …", made printable.
    return { problem: excerpt(err instanceof Error ? err.message : String(err), 160) };
  }
}

/**
 * The pair's settings: the defaults, with the stored ones over them. The settings drive the scanner (how fast, how
 * much at a time, which blocks it moves), so a stored one that is bad (settingOf), or settings that do not fit
 * together (checkConfig), are refused with one line: none is replaced by its default behind the user's back. Rows of
 * keys this version does not know (a later version's) are not read, nor those of `replacing` (keys a change is about
 * to set: the result is then not checked as a whole, mergeConfig does that with the new values).
 */
export function loadConfig(store: Store, pairId: number, replacing: ReadonlySet<string> = new Set()): PairConfig {
  const c: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const r of store.health.config(pairId, CONFIG_KEYS, MAX_SETTING_JSON)) {
    if (replacing.has(r.key)) continue; // about to be replaced: a bad stored value can be mended with `config`
    const checked = settingOf(r);
    if ('problem' in checked) throw store.health.settingsError(pairId, checked.problem);
    c[r.key] = checked.value;
  }
  const config = c as unknown as PairConfig;
  if (replacing.size) return config; // the caller checks them together with the new values (mergeConfig)
  const problem = checkConfig(config);
  if (problem) {
    throw store.health.settingsError(pairId, `${problem} (stored: latencyWarnMs=${config.latencyWarnMs}, latencyRemapMs=${config.latencyRemapMs}, latencyCriticalMs=${config.latencyCriticalMs})`);
  }
  return config;
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

/** Blocks [firstBlock, endBlock) read fast: they are not slow (any more). */
export function clearSlowBlocks(store: Store, pairId: number, firstBlock: number, endBlock: number): void {
  store.health.clearSlowBlocks(pairId, firstBlock, endBlock);
}

/** Slow blocks that are not remapped (bad rows left out, with one warning: lib/store/health.ts). */
export function slowBlocks(store: Store, pairId: number): Array<{ block: number; latencyMs: number }> {
  return store.health.slowBlocks(pairId);
}

/** Remap events (not retirements) per day for the `days` days ending at `now`, oldest first (bad rows left out, with one warning: lib/store/events.ts). */
export function remapDays(store: Store, pairId: number, now: number, days: number): number[] {
  return store.events.remapDays(pairId, now, days);
}

export function remapEventCount(store: Store, pairId: number): number {
  return store.events.remapCount(pairId);
}

/**
 * What the last report saw, or undefined: none, or a row that breaks a rule (made after `now`, or having seen more
 * remap events than there are), which is set aside with one warning (lib/store/health.ts) so that no new remap
 * goes unreported.
 */
export function loadReportState(store: Store, pairId: number, now: number = Date.now()): { reportedAt: number; remapEvents: number } | undefined {
  return store.health.reportState(pairId, now, store.events.remapCount(pairId));
}

export function saveReportState(store: Store, pairId: number, reportedAt: number, remapEvents: number): void {
  store.health.putReportState(pairId, reportedAt, remapEvents);
}

export type { HistoryEvent } from '../store/db.js';

export function recentEvents(store: Store, pairId: number, limit: number): HistoryEvent[] {
  return store.events.recent(pairId, limit);
}
