/**
 * Rows read back from SQLite are untrusted input (docs/format.md, "SQLite
 * database"): anyone who can write the file can put a negative, fractional or
 * text block number, or one past the end of the device, into any column.
 * The row readers (remaps.ts, bad-sectors.ts) check every row they hand out
 * against the bounds that the pair's own row gives, here, and refuse a bad one
 * with one line that names the row and the problem.
 *
 * The same helpers serve the other tables. A row that drives an action
 * (mounts.ts, imports: a process to signal, a socket to talk to, a leftover
 * to remove; the settings, lib/health/history.ts) is refused the same way. A
 * row that only feeds a report (events.ts, health.ts: slow blocks, the last
 * report's state) is left out, and the reader says so in one warning line
 * (badRowsLine, through Store.warn).
 */
import * as path from 'path';
import { excerpt, RemapfsError } from '../errors.js';
import { SECTOR_BYTES } from '../format/layout.js';
import type { SqliteDatabase } from './sqlite.js';

/** What to do about a bad row in a pair's remap table or bad-sector list. */
export const BAD_ROW_HINT = 'restore the database, or delete the pair from it and "remapfs import" it from its spare';

/** The bounds a pair's rows must keep (from its pairs row; Infinity where that row gives none). */
export interface RowBounds {
  name: string;
  /** Blocks of the virtual device: main blocks are below this. */
  mainBlocks: number;
  /** Blocks of the spare: spare blocks are below this. */
  spareBlocks: number;
  /** 512-byte sectors in a block: lost sectors are at most this. */
  sectorsPerBlock: number;
  /** 512-byte sectors of the virtual device: bad sectors are below this. */
  sectors: number;
}

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** The bounds of pair `pairId`'s rows. A pairs row that is itself malformed bounds nothing here (it is checked where pairs are opened). */
export function rowBounds(db: SqliteDatabase, pairId: number): RowBounds {
  const r = db.prepare<[number], { name: unknown; block_size: unknown; main_bytes: unknown; spare_bytes: unknown }>('SELECT name, block_size, main_bytes, spare_bytes FROM pairs WHERE id = ?').get(pairId);
  const name = typeof r?.name === 'string' ? excerpt(r.name) : `#${pairId}`;
  if (!r || !positive(r.block_size) || !positive(r.main_bytes) || !positive(r.spare_bytes)) {
    return { name, mainBlocks: Infinity, spareBlocks: Infinity, sectorsPerBlock: Infinity, sectors: Infinity };
  }
  const mainBlocks = Math.floor(r.main_bytes / r.block_size);
  return {
    name,
    mainBlocks,
    spareBlocks: Math.floor(r.spare_bytes / r.block_size),
    sectorsPerBlock: Math.floor(r.block_size / SECTOR_BYTES),
    sectors: Math.floor((mainBlocks * r.block_size) / SECTOR_BYTES),
  };
}

/** A column's value as it may appear in a message: numbers as they are, text quoted and cut short. */
export function showValue(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return `"${excerpt(v)}"`;
  if (Buffer.isBuffer(v)) return 'a blob';
  return `a ${typeof v}`;
}

export function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** Why `v` is not an integer from `min` up to (not including) `end`, or undefined. */
export function rangeProblem(what: string, v: unknown, min: number, end: number, unit: string): string | undefined {
  if (!isInteger(v)) return `${what} ${showValue(v)} is not an integer`;
  if (v < min || v >= end) return `${what} ${v} is outside the ${unit} (${min} to ${Number.isFinite(end) ? end - 1 : '2^53-1'})`;
  return undefined;
}

/** The one-line refusal of a bad row (the hint: what to do about a bad row of that table). */
export function badRowError(what: string, bounds: RowBounds, problem: string, hint = BAD_ROW_HINT): RemapfsError {
  return new RemapfsError(`read ${what} of pair`, bounds.name, `the database has a bad row: ${problem}`, hint);
}

/** One past the largest safe integer: every number the row rules accept is below it (SQLite binds no Infinity). */
export const BEYOND_SAFE = 2 ** 53;

/** A bound for SQL: one the pairs row does not give (Infinity) is 2^53. */
export function sqlBound(v: number): number {
  return Number.isFinite(v) ? v : BEYOND_SAFE;
}

/** A time in ms since the epoch as remapfs writes one: a finite number from 0 to 2^53-1 (the scheduler's are fractional). */
export function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < BEYOND_SAFE;
}

/** isTime in SQL, over the column `col`: true for a good value (NULL, text and blobs are bad). */
export function timeSql(col: string): string {
  return `(typeof(${col}) IN ('integer', 'real') AND ${col} >= 0 AND ${col} < ${BEYOND_SAFE})`;
}

/** Why `v` is not a time (isTime), or undefined. */
export function timeProblem(what: string, v: unknown): string | undefined {
  return isTime(v) ? undefined : `${what} ${showValue(v)} is not a time (ms since the epoch, 0 to 2^53-1)`;
}

/** Linux's PID_MAX_LIMIT (2^22 on 64-bit machines): /proc/sys/kernel/pid_max is at most this, and every pid is below it. */
export const PID_LIMIT = 4194304;

/**
 * Why a row that names a process (mounts, imports: a pid and the time it wrote the row) is bad, or undefined. A pid
 * of 0 or below would make kill(2) address a process group or every process, and a text or fractional one is no
 * process at all.
 */
export function processRowProblem(pid: unknown, startedAt: unknown): string | undefined {
  const bad = rangeProblem('pid', pid, 1, PID_LIMIT, 'range of process ids');
  if (bad) return bad;
  if (!isInteger(startedAt) || startedAt < 0) return `started_at ${showValue(startedAt)} is not a time (whole ms since the epoch, 0 to 2^53-1)`;
  return undefined;
}

/** Why `v` is not an absolute, normalized path of at most `maxBytes` bytes without a NUL, or undefined. */
export function absolutePathProblem(what: string, v: unknown, maxBytes: number): string | undefined {
  if (typeof v !== 'string') return `${what} ${showValue(v)} is not text`;
  if (v.includes('\0') || !path.isAbsolute(v) || path.resolve(v) !== v) return `${what} ${showValue(v)} is not an absolute path`;
  const bytes = Buffer.byteLength(v);
  if (bytes > maxBytes) return `${what} ${showValue(v)} is ${bytes} bytes long (at most ${maxBytes})`;
  return undefined;
}

/**
 * The one warning line of a reader that set bad rows aside (they only feed a report): how many, and what is wrong
 * with the first. `what` names a row ("slow block").
 */
export function badRowsLine(bounds: RowBounds, what: string, count: number, problem: string): string {
  return count === 1 ? `pair ${bounds.name}: ignoring 1 bad ${what} row: ${problem}` : `pair ${bounds.name}: ignoring ${count} bad ${what} rows, the first: ${problem}`;
}


/**
 * The row rules of an imports row (processRowProblem: a pid a process can have, a time), read with its pair's
 * (already checked) row: a bad one is refused with one line. Its pair is an import that never finished: deleting the
 * pair's row removes it and its rows (they cascade), and the import can run again.
 */
export function checkImportRow(pair: { name: string; id: number }, pid: unknown, startedAt: unknown): void {
  const problem = processRowProblem(pid, startedAt);
  if (!problem) return;
  throw new RemapfsError(
    'read database',
    `import of pair ${pair.name}`,
    `invalid row: ${problem}`,
    `restore the database, or delete pairs row ${pair.id} from it (an import that never finished) and run "remapfs import" again`,
  );
}
