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
import type { SqliteDatabase } from './sqlite.js';

import type { RemapReason } from '../format/slot-codec.js';
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

export class RemapRepo {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly pairs: PairRepo,
  ) {}

  /** The pair's remaps by main block. */
  list(pairId: number): RemapRecord[] {
    const rows = this.db
      .prepare<[number]>('SELECT main_block, spare_block, reason, state, lost_sectors, created_at FROM remaps WHERE pair_id = ? ORDER BY main_block')
      .raw<[number, number | null, RemapReason, RemapState, number, number]>()
      .all(pairId);
    return rows.map(([mainBlock, spareBlock, reason, state, lostSectors, createdAt]) => ({
      mainBlock,
      spareBlock: spareBlock ?? -1,
      reason,
      state,
      lostSectors,
      createdAt,
    }));
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
    return this.db.prepare<[number]>('SELECT spare_block FROM retired WHERE pair_id = ? ORDER BY spare_block').pluck<number>().all(pairId);
  }

  retiredWithTimes(pairId: number): RetiredRecord[] {
    return this.db
      .prepare<[number]>('SELECT spare_block, created_at FROM retired WHERE pair_id = ? ORDER BY spare_block')
      .raw<[number, number]>()
      .all(pairId)
      .map(([spareBlock, createdAt]) => ({ spareBlock, createdAt }));
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
  counts(pairId: number): { remapped: number; label: number; pending: number; retired: number } {
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
    const rows = this.db
      .prepare<[number], { reason: string; n: number }>("SELECT reason, count(*) AS n FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason != 'label' GROUP BY reason")
      .all(pairId);
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  /** Sectors lost in the blocks that were remapped (read as zeros). */
  lostSectors(pairId: number): number {
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
