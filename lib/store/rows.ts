/**
 * Rows read back from SQLite are untrusted input (docs/format.md, "SQLite
 * database"): anyone who can write the file can put a negative, fractional or
 * text block number, or one past the end of the device, into any column.
 * The row readers (remaps.ts, bad-sectors.ts) check every row they hand out
 * against the bounds that the pair's own row gives, here, and refuse a bad one
 * with one line that names the row and the problem.
 */
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

/** The one-line refusal of a bad row. */
export function badRowError(what: string, bounds: RowBounds, problem: string): RemapfsError {
  return new RemapfsError(`read ${what} of pair`, bounds.name, `the database has a bad row: ${problem}`, BAD_ROW_HINT);
}
