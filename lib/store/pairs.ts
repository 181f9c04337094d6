/**
 * The pairs table: one row per pair (name and uuid unique), its devices'
 * paths and sizes, and pairs.meta_seq, the sequence number of the last
 * metadata change committed to this database (docs/format.md).
 *
 * Deleting a pair cascades to every table keyed by pair_id. Callers that
 * change several rows at once wrap the calls in Store.transaction.
 *
 * A pair whose import is unfinished (a row in `imports`, schema.ts) is left
 * out of list(), get() and byUuid(): it is nobody's pair until its import's
 * last transaction. claims() sees it, so its name and UUID stay taken.
 *
 * Rows are untrusted (the file can be edited or damaged): pairFromRow checks
 * every field (pairRowProblem) and refuses a bad row with one line, so no
 * command computes with a block size of 0 or opens a relative path.
 */
import * as path from 'path';
import { RemapfsError } from '../errors.js';
import { spareLayout, validateBlockSize } from '../format/layout.js';
import { MAX_SEQUENCE, pairNameProblem, uuidProblem } from '../format/validate.js';
import { checkImportRow } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

export interface PairRecord {
  id: number;
  name: string;
  uuid: string;
  mainPath: string;
  sparePath: string;
  blockSize: number;
  mainBytes: number;
  spareBytes: number;
  createdAt: number;
  /** Sequence number of the last metadata change committed here. */
  metaSeq: number;
  /** The main carries this pair's label in its last block (docs/format.md). */
  mainLabel: boolean;
  /** Hardware serial or WWN of the main when it is a block device that has one. */
  mainHwid: string | null;
  /** Hardware serial or WWN of the spare, likewise: discovery never swaps in a spare with another one. */
  spareHwid: string | null;
}

export type NewPair = Omit<PairRecord, 'id' | 'mainLabel' | 'mainHwid' | 'spareHwid'> & Partial<Pick<PairRecord, 'mainLabel' | 'mainHwid' | 'spareHwid'>>;

export interface PairRow {
  id: number;
  name: string;
  uuid: string;
  main_path: string;
  spare_path: string;
  block_size: number;
  main_bytes: number;
  spare_bytes: number;
  created_at: number;
  meta_seq: number;
  main_label: number;
  main_hwid: string | null;
  spare_hwid: string | null;
}

/** A file identity as identify.ts fileId writes it. */
const FILE_ID = /^ino:\d{1,20}:birth:\d{1,30}$/;

/** Pairs that are pairs: not an import in progress or interrupted. */
const FINISHED = 'NOT EXISTS (SELECT 1 FROM imports WHERE imports.pair_id = pairs.id)';

/** A row that holds a name or a UUID: a pair, or an unfinished import (and the process that began it). */
export interface PairClaim {
  pair: PairRecord;
  importPid: number | null;
}

export class PairRepo {
  constructor(private readonly db: SqliteDatabase) {}

  list(): PairRecord[] {
    return this.db.prepare<[], PairRow>(`SELECT * FROM pairs WHERE ${FINISHED} ORDER BY name`).all().map(pairFromRow);
  }

  get(name: string): PairRecord | undefined {
    const row = this.db.prepare<[string], PairRow>(`SELECT * FROM pairs WHERE name = ? AND ${FINISHED}`).get(name);
    return row ? pairFromRow(row) : undefined;
  }

  byUuid(uuid: string): PairRecord | undefined {
    const row = this.db.prepare<[string], PairRow>(`SELECT * FROM pairs WHERE uuid = ? AND ${FINISHED}`).get(uuid);
    return row ? pairFromRow(row) : undefined;
  }

  /** The rows holding this name or (when given) this UUID, unfinished imports included (their imports rows checked). */
  claims(name: string, uuid?: string): PairClaim[] {
    return this.db
      .prepare<[string, string | null], PairRow & { importing: number; import_pid: unknown; import_started_at: unknown }>(
        'SELECT pairs.*, imports.pair_id IS NOT NULL AS importing, imports.pid AS import_pid, imports.started_at AS import_started_at FROM pairs LEFT JOIN imports ON imports.pair_id = pairs.id WHERE name = ? OR uuid = ? ORDER BY id',
      )
      .all(name, uuid ?? null)
      .map((r) => {
        const pair = pairFromRow(r);
        if (!r.importing) return { pair, importPid: null };
        checkImportRow(pair, r.import_pid, r.import_started_at);
        return { pair, importPid: r.import_pid as number };
      });
  }

  insert(input: NewPair): PairRecord {
    const p = { mainLabel: false, mainHwid: null, spareHwid: null, ...input };
    const info = this.db
      .prepare<[string, string, string, string, number, number, number, number, number, number, string | null, string | null]>(
        'INSERT INTO pairs (name, uuid, main_path, spare_path, block_size, main_bytes, spare_bytes, created_at, meta_seq, main_label, main_hwid, spare_hwid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(p.name, p.uuid, p.mainPath, p.sparePath, p.blockSize, p.mainBytes, p.spareBytes, p.createdAt, p.metaSeq, p.mainLabel ? 1 : 0, p.mainHwid, p.spareHwid);
    return { ...p, id: Number(info.lastInsertRowid) };
  }

  /** Removes a pair and, by cascade, everything recorded for it. */
  delete(pairId: number): void {
    this.db.prepare<[number]>('DELETE FROM pairs WHERE id = ?').run(pairId);
  }

  setMainLabel(pairId: number, hwid: string | null): void {
    this.db.prepare<[string | null, number]>('UPDATE pairs SET main_label = 1, main_hwid = ? WHERE id = ?').run(hwid, pairId);
  }

  /** The recorded file identities of a pair's image files (schema.ts, device_ids); a malformed row counts as none. */
  fileIds(pairId: number): { main?: string; spare?: string } {
    const out: { main?: string; spare?: string } = {};
    for (const r of this.db.prepare<[number], { role: unknown; file_id: unknown }>('SELECT role, file_id FROM device_ids WHERE pair_id = ?').all(pairId)) {
      if ((r.role === 'main' || r.role === 'spare') && typeof r.file_id === 'string' && FILE_ID.test(r.file_id)) out[r.role] = r.file_id;
    }
    return out;
  }

  /** Records the identities of the pair's devices now at its paths (undefined: not a file, the row goes). */
  setFileIds(pairId: number, ids: { main: string | undefined; spare: string | undefined }): void {
    for (const role of ['main', 'spare'] as const) {
      const id = ids[role];
      if (id === undefined) this.db.prepare<[number, string]>('DELETE FROM device_ids WHERE pair_id = ? AND role = ?').run(pairId, role);
      else this.db.prepare<[number, string, string]>('INSERT OR REPLACE INTO device_ids (pair_id, role, file_id) VALUES (?, ?, ?)').run(pairId, role, id);
    }
  }

  /** Records where a pair's devices are now (after a rename, a move or a reboot). */
  updatePaths(pairId: number, mainPath: string, sparePath: string, spareHwid?: string | null): void {
    this.db.prepare<[string, string, number]>('UPDATE pairs SET main_path = ?, spare_path = ? WHERE id = ?').run(mainPath, sparePath, pairId);
    if (spareHwid !== undefined) this.db.prepare<[string | null, number]>('UPDATE pairs SET spare_hwid = ? WHERE id = ?').run(spareHwid, pairId);
  }

  setMetaSeq(pairId: number, seq: number): void {
    this.db.prepare<[number, number]>('UPDATE pairs SET meta_seq = ? WHERE id = ?').run(seq, pairId);
  }

  metaSeq(pairId: number): number {
    return this.db.prepare<[number]>('SELECT meta_seq FROM pairs WHERE id = ?').pluck<number>().get(pairId) as number;
  }
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** What is wrong with a pairs row (pure), or undefined. */
export function pairRowProblem(r: PairRow): string | undefined {
  if (typeof r.name !== 'string' || pairNameProblem(r.name)) return pairNameProblem(String(r.name));
  if (typeof r.uuid !== 'string' || uuidProblem(r.uuid)) return uuidProblem(String(r.uuid));
  for (const [role, p] of [['main', r.main_path], ['spare', r.spare_path]] as const) {
    if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0')) return `the ${role} path ${JSON.stringify(p)} is not an absolute path`;
  }
  if (typeof r.block_size !== 'number' || validateBlockSize(r.block_size)) return validateBlockSize(Number(r.block_size)) ?? `block size ${String(r.block_size)} is not a number`;
  if (!isCount(r.main_bytes) || r.main_bytes < r.block_size) return `main size ${String(r.main_bytes)} is not a whole number of bytes of at least one block (${r.block_size})`;
  if (!isCount(r.spare_bytes) || spareLayout(r.spare_bytes, r.block_size).poolBlocks === 0) return `spare size ${String(r.spare_bytes)} leaves no spare block after the metadata slots`;
  if (!isCount(r.meta_seq) || r.meta_seq > MAX_SEQUENCE) return `metadata sequence ${String(r.meta_seq)} is not a whole number below 2^53`;
  if (!isCount(r.created_at)) return `creation time ${String(r.created_at)} is not a whole number`;
  if (r.main_label !== 0 && r.main_label !== 1) return `main_label ${String(r.main_label)} is neither 0 nor 1`;
  return undefined;
}

/** A pairs row as a PairRecord; a row that fails pairRowProblem is refused with one line. */
export function pairFromRow(r: PairRow): PairRecord {
  const problem = pairRowProblem(r);
  if (problem) {
    const which = typeof r.name === 'string' && !pairNameProblem(r.name) ? `pair ${r.name}` : `pairs row ${String(r.id)}`;
    throw new RemapfsError('read database', which, `invalid row: ${problem}`, 'restore the database, or delete the pair from it and "remapfs import" it from its devices');
  }
  return {
    id: r.id,
    name: r.name,
    uuid: r.uuid,
    mainPath: r.main_path,
    sparePath: r.spare_path,
    blockSize: r.block_size,
    mainBytes: r.main_bytes,
    spareBytes: r.spare_bytes,
    createdAt: r.created_at,
    metaSeq: r.meta_seq,
    mainLabel: r.main_label === 1,
    mainHwid: r.main_hwid,
    spareHwid: r.spare_hwid ?? null,
  };
}
