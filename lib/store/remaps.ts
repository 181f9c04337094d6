/**
 * A pair's remap table in SQLite: the remaps table (one row per main block,
 * keyed by (pair_id, main_block); a spare block is used at most once, and a
 * pending block has none: NULL here, -1 in a RemapRecord) and the retired
 * table (spare blocks that failed and are never handed out again).
 *
 * Together with pairs.meta_seq these mirror the slots on the spare; callers
 * change them inside Store.transaction, next to the sequence number.
 */
import type { PairRepo } from './pairs.js';
import { badRowError, isInteger, rangeProblem, rowBounds, type RowBounds, showValue } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

import { REASONS, type RemapReason } from '../format/slot-codec.js';
import { type EntryColumns, fingerprintSql, PRINT_COLUMNS } from '../format/fingerprint.js';
export type { RemapReason };
export type RemapState = 'remapped' | 'pending';

export interface RemapRecord {
  mainBlock: number;
  /** -1 for a pending block that has no spare block yet. */
  spareBlock: number;
  reason: RemapReason;
  state: RemapState;
  lostSectors: number;
  createdAt: number;
}

export interface RetiredRecord {
  spareBlock: number;
  createdAt: number;
}

/** An entry's fields over the remaps table's columns, each prefixed with `row` ('' or 'ROW.' for triggers). */
export function remapColumns(row: string): EntryColumns {
  return {
    mainBlock: `${row}main_block`,
    spareBlock: `ifnull(${row}spare_block, -1)`,
    createdAt: `${row}created_at`,
    lostSectors: `${row}lost_sectors`,
    state: `${row}state`,
    reason: `${row}reason`,
  };
}

/** An entry's fields over the retired table's columns (see remapColumns). */
export function retiredColumns(row: string): EntryColumns {
  return { mainBlock: '-1', spareBlock: `${row}spare_block`, createdAt: `${row}created_at`, lostSectors: '0', state: "'retired'", reason: "'none'" };
}

// An upsert on the main block only: a spare block already used by another main block is a
// constraint error, never a silent deletion of that other row (which OR REPLACE would do).
const PUT_REMAP_SQL = `INSERT INTO remaps (pair_id, main_block, spare_block, reason, state, lost_sectors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (pair_id, main_block) DO UPDATE SET spare_block = excluded.spare_block, reason = excluded.reason, state = excluded.state,
  lost_sectors = excluded.lost_sectors, created_at = excluded.created_at`;
type PutRemapParams = [number, number, number | null, RemapReason, RemapState, number, number];

/**
 * A pair's fingerprint parts ([count, six sums], lib/format/fingerprint.ts) over its remaps and retired rows
 * together, computed by SQLite from every row without handing the rows to JavaScript.
 */
export function rowPrintParts(db: SqliteDatabase, pairId: number): number[] {
  const [a, b] = [fingerprintSql('remaps', 'pair_id = ?', remapColumns('')), fingerprintSql('retired', 'pair_id = ?', retiredColumns(''))].map(
    (sql) => db.prepare<[number]>(sql).raw<number[]>().get(pairId) as number[],
  ) as [number[], number[]];
  return a.map((v, i) => v + (b[i] ?? 0));
}

/** Remapped (without the label block), label, pending and retired blocks of a pair. */
export interface RemapCounts {
  remapped: number;
  label: number;
  pending: number;
  retired: number;
}

/** A remaps row as SQLite returns it: main_block, spare_block, reason, state, lost_sectors, created_at (any type). */
type RemapRow = [unknown, unknown, unknown, unknown, unknown, unknown];
/** A retired row: spare_block, created_at. */
type RetiredRow = [unknown, unknown];

const ROW_REASONS = REASONS.filter((r) => r !== 'none');

/**
 * The row rules of a remaps row (docs/format.md, "SQLite database"): each column's type and range on its own,
 * against the pair's geometry. Whether the rows make a valid table together (a spare block inside a slot or used
 * twice, the label's reason) is the table rules' business (lib/format/validate.ts), checked when a pair is opened.
 * VALID_REMAP_SQL is the same rules in SQL; the two must agree (tests/unit/store-rows.test.ts).
 */
export function remapRowProblem(row: readonly unknown[], b: RowBounds): string | undefined {
  const [main, spare, reason, state, lost, createdAt] = row;
  const mainBad = rangeProblem('main block', main, 0, b.mainBlocks, 'device');
  if (mainBad) return mainBad;
  const at = `main block ${String(main)}`;
  if (typeof state !== 'string' || (state !== 'remapped' && state !== 'pending')) return `${at}: unknown state ${showValue(state)}`;
  if (typeof reason !== 'string' || !(ROW_REASONS as readonly string[]).includes(reason)) return `${at}: unknown reason ${showValue(reason)}`;
  if (state === 'pending' && spare !== null) return `${at}: a pending block has spare block ${showValue(spare)} (must be NULL)`;
  if (state === 'remapped') {
    if (spare === null) return `${at}: a remapped block has no spare block`;
    const spareBad = rangeProblem('spare block', spare, 0, b.spareBlocks, 'spare');
    if (spareBad) return `${at}: ${spareBad}`;
  }
  const lostBad = rangeProblem('lost sector count', lost, 0, b.sectorsPerBlock + 1, 'block');
  if (lostBad) return `${at}: ${lostBad}`;
  if (!isInteger(createdAt) || createdAt < 0) return `${at}: time ${showValue(createdAt)} is not a non-negative integer`;
  return undefined;
}

/** The row rules of a retired row: a spare block on the spare, a time. */
export function retiredRowProblem(row: readonly unknown[], b: RowBounds): string | undefined {
  const [spare, createdAt] = row;
  const spareBad = rangeProblem('retired spare block', spare, 0, b.spareBlocks, 'spare');
  if (spareBad) return spareBad;
  if (!isInteger(createdAt) || createdAt < 0) return `retired spare block ${String(spare)}: time ${showValue(createdAt)} is not a non-negative integer`;
  return undefined;
}

/** One past the largest safe integer: every value the rules accept is below it. */
const BEYOND_SAFE = 2 ** 53;
const intIn = (col: string): string => `(typeof(${col}) = 'integer' AND ${col} >= 0 AND ${col} < ?)`;

/** remapRowProblem in SQL: true for a good row (NULL, where a crafted table allows one, is bad). Parameters: main blocks, spare blocks, sectors per block + 1, 2^53. */
const VALID_REMAP_SQL = `(${intIn('main_block')} AND state IN ('remapped', 'pending') AND reason IN (${ROW_REASONS.map((r) => `'${r}'`).join(', ')})
  AND (CASE state WHEN 'pending' THEN spare_block IS NULL ELSE spare_block IS NOT NULL AND ${intIn('spare_block')} END)
  AND ${intIn('lost_sectors')} AND ${intIn('created_at')})`;
/** retiredRowProblem in SQL. Parameters: spare blocks, 2^53. */
const VALID_RETIRED_SQL = `(${intIn('spare_block')} AND ${intIn('created_at')})`;

/** SQLite binds no Infinity: a bound the pair's row does not give is 2^53. */
function sqlBounds(b: RowBounds): { remap: number[]; retired: number[] } {
  const n = (v: number): number => (Number.isFinite(v) ? v : BEYOND_SAFE);
  return { remap: [n(b.mainBlocks), n(b.spareBlocks), n(b.sectorsPerBlock + 1), BEYOND_SAFE], retired: [n(b.spareBlocks), BEYOND_SAFE] };
}

export class RemapRepo {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly pairs: PairRepo,
  ) {}

  /** The pair's remaps by main block; a row that breaks a row rule (remapRowProblem) is refused with one line. */
  list(pairId: number): RemapRecord[] {
    const rows = this.db
      .prepare<[number]>('SELECT main_block, spare_block, reason, state, lost_sectors, created_at FROM remaps WHERE pair_id = ? ORDER BY main_block')
      .raw<RemapRow>()
      .all(pairId);
    if (rows.length === 0) return [];
    const bounds = rowBounds(this.db, pairId);
    return rows.map((row) => {
      const bad = remapRowProblem(row, bounds);
      if (bad) throw badRowError('remap table', bounds, bad);
      const [mainBlock, spareBlock, reason, state, lostSectors, createdAt] = row as [number, number | null, RemapReason, RemapState, number, number];
      return { mainBlock, spareBlock: spareBlock ?? -1, reason, state, lostSectors, createdAt };
    });
  }

  /** True when the table puts main block `mainBlock` on the spare (a remapped row; a pending block is on main). */
  isRemapped(pairId: number, mainBlock: number): boolean {
    return this.db.prepare<[number, number]>("SELECT 1 FROM remaps WHERE pair_id = ? AND main_block = ? AND state = 'remapped'").pluck().get(pairId, mainBlock) !== undefined;
  }

  /**
   * Refuses the pair's remap and retired rows, with one line, when one breaks a row rule: the check that the
   * aggregates (counts, byReason, lostSectors) make before they count, in SQL (badRemapRowSql), so that no
   * command reports or writes what such a row says.
   */
  checkRows(pairId: number): void {
    const bounds = rowBounds(this.db, pairId);
    const params = sqlBounds(bounds);
    const row = this.db
      .prepare<[number, ...number[]]>(`SELECT main_block, spare_block, reason, state, lost_sectors, created_at FROM remaps WHERE pair_id = ? AND NOT coalesce(${VALID_REMAP_SQL}, 0) LIMIT 1`)
      .raw<RemapRow>()
      .get(pairId, ...params.remap);
    if (row) throw badRowError('remap table', bounds, remapRowProblem(row, bounds) ?? 'a value is out of range');
    const retired = this.db.prepare<[number, ...number[]]>(`SELECT spare_block, created_at FROM retired WHERE pair_id = ? AND NOT coalesce(${VALID_RETIRED_SQL}, 0) LIMIT 1`).raw<RetiredRow>().get(pairId, ...params.retired);
    if (retired) throw badRowError('remap table', bounds, retiredRowProblem(retired, bounds) ?? 'a value is out of range');
  }

  put(pairId: number, r: RemapRecord): void {
    this.db.prepare<PutRemapParams>(PUT_REMAP_SQL).run(pairId, r.mainBlock, r.spareBlock < 0 ? null : r.spareBlock, r.reason, r.state, r.lostSectors, r.createdAt);
  }

  /** As put() for many records, with one prepared statement. */
  putMany(pairId: number, records: readonly RemapRecord[]): void {
    const stmt = this.db.prepare<PutRemapParams>(PUT_REMAP_SQL);
    for (const r of records) stmt.run(pairId, r.mainBlock, r.spareBlock < 0 ? null : r.spareBlock, r.reason, r.state, r.lostSectors, r.createdAt);
  }

  retired(pairId: number): number[] {
    return this.retiredWithTimes(pairId).map((r) => r.spareBlock);
  }

  /** The pair's retired spare blocks by block; a bad row is refused with one line, as in list(). */
  retiredWithTimes(pairId: number): RetiredRecord[] {
    const rows = this.db.prepare<[number]>('SELECT spare_block, created_at FROM retired WHERE pair_id = ? ORDER BY spare_block').raw<RetiredRow>().all(pairId);
    if (rows.length === 0) return [];
    const bounds = rowBounds(this.db, pairId);
    return rows.map((row) => {
      const bad = retiredRowProblem(row, bounds);
      if (bad) throw badRowError('remap table', bounds, bad);
      const [spareBlock, createdAt] = row as [number, number];
      return { spareBlock, createdAt };
    });
  }

  putRetired(pairId: number, spareBlock: number, createdAt: number): void {
    this.db.prepare<[number, number, number]>('INSERT OR IGNORE INTO retired (pair_id, spare_block, created_at) VALUES (?, ?, ?)').run(pairId, spareBlock, createdAt);
  }

  /** As putRetired() for many records, with one prepared statement. */
  putRetiredMany(pairId: number, records: readonly RetiredRecord[]): void {
    const stmt = this.db.prepare<[number, number, number]>('INSERT OR IGNORE INTO retired (pair_id, spare_block, created_at) VALUES (?, ?, ?)');
    for (const r of records) stmt.run(pairId, r.spareBlock, r.createdAt);
  }

  /** Replaces a pair's remap table and retired list and sets its sequence (callers wrap this in a transaction). */
  replaceTable(pairId: number, remaps: readonly RemapRecord[], retired: readonly RetiredRecord[], seq: number): void {
    this.db.prepare<[number]>('DELETE FROM remaps WHERE pair_id = ?').run(pairId);
    this.db.prepare<[number]>('DELETE FROM retired WHERE pair_id = ?').run(pairId);
    this.putMany(pairId, remaps);
    this.putRetiredMany(pairId, retired);
    this.pairs.setMetaSeq(pairId, seq);
  }

  /**
   * Remapped blocks (without the label block, which is structure, not a
   * failure), the label block, pending blocks, retired spare blocks. Spare
   * blocks in use = remapped + label + retired.
   */
  counts(pairId: number): RemapCounts {
    this.checkRows(pairId);
    return this.countsOf(pairId);
  }

  /** counts, byReason and lostSectors together, after one check of the rows (each alone checks them: a scan). */
  summary(pairId: number): { counts: RemapCounts; byReason: Record<string, number>; lostSectors: number } {
    this.checkRows(pairId);
    return { counts: this.countsOf(pairId), byReason: this.byReasonOf(pairId), lostSectors: this.lostSectorsOf(pairId) };
  }

  private countsOf(pairId: number): RemapCounts {
    const count = (sql: string): number => this.db.prepare<[number]>(sql).pluck<number>().get(pairId) as number;
    return {
      remapped: count("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason != 'label'"),
      label: count("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason = 'label'"),
      pending: count("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'pending'"),
      retired: count('SELECT count(*) FROM retired WHERE pair_id = ?'),
    };
  }

  /** Remapped blocks by reason (without the label block). */
  byReason(pairId: number): Record<string, number> {
    this.checkRows(pairId);
    return this.byReasonOf(pairId);
  }

  private byReasonOf(pairId: number): Record<string, number> {
    const rows = this.db
      .prepare<[number], { reason: string; n: number }>("SELECT reason, count(*) AS n FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason != 'label' GROUP BY reason")
      .all(pairId);
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  /** Sectors lost in the blocks that were remapped (read as zeros). */
  lostSectors(pairId: number): number {
    this.checkRows(pairId);
    return this.lostSectorsOf(pairId);
  }

  private lostSectorsOf(pairId: number): number {
    return this.db.prepare<[number]>("SELECT coalesce(sum(lost_sectors), 0) FROM remaps WHERE pair_id = ? AND state = 'remapped'").pluck<number>().get(pairId) as number;
  }

  /** The pair's fingerprint parts computed by SQLite from every row (rowPrintParts). */
  rowPrintParts(pairId: number): number[] {
    return rowPrintParts(this.db, pairId);
  }

  /**
   * The pair's fingerprint parts as the database's triggers keep them (schema.ts, table_prints), or undefined
   * when there is no such row or a value is not a non-negative safe integer (read from outside: never trusted).
   */
  storedPrintParts(pairId: number): number[] | undefined {
    const row = this.db.prepare<[number]>(`SELECT ${PRINT_COLUMNS.join(', ')} FROM table_prints WHERE pair_id = ?`).raw<unknown[]>().get(pairId);
    if (!row || !row.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) return undefined;
    return row as number[];
  }
}
