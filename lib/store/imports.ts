/**
 * The imports table (schema.ts): pairs whose import is not finished. An
 * import writes its pair row and this row in its first transaction, its
 * remaps, retired blocks and events in many more, and deletes this row in its
 * last one; until then the pair is left out of every lookup that serves users
 * (pairs.ts). A leftover (its process died) is removed a chunk at a time by
 * deleteRows(), then with its pair row (lib/discovery/import-steps.ts decides
 * when one may be removed).
 *
 * Rows are untrusted: the pid decides whether a leftover may be removed (a
 * live process keeps it) and appears in messages, so every row read is
 * checked (checkImportRow, also where pairs.ts reads it) and a bad one is
 * refused with one line.
 */
import { pairFromRow, type PairRecord, type PairRow } from './pairs.js';
import { checkImportRow } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

export interface UnfinishedImport {
  pair: PairRecord;
  /** The process that began it. */
  pid: number;
  startedAt: number;
}

export class ImportRepo {
  constructor(private readonly db: SqliteDatabase) {}

  /** Marks a pair row just inserted as an import in progress in process `pid`. */
  begin(pairId: number, pid: number, startedAt: number): void {
    this.db.prepare<[number, number, number]>('INSERT INTO imports (pair_id, pid, started_at) VALUES (?, ?, ?)').run(pairId, pid, startedAt);
  }

  /** Ends the import: the pair becomes a pair. False when its row was gone (removed as a leftover). */
  finish(pairId: number): boolean {
    return this.db.prepare<[number]>('DELETE FROM imports WHERE pair_id = ?').run(pairId).changes === 1;
  }

  isUnfinished(pairId: number): boolean {
    return this.db.prepare<[number]>('SELECT count(*) FROM imports WHERE pair_id = ?').pluck<number>().get(pairId) === 1;
  }

  unfinished(): UnfinishedImport[] {
    return this.db
      .prepare<[], PairRow & { import_pid: unknown; import_started_at: unknown }>(
        'SELECT pairs.*, imports.pid AS import_pid, imports.started_at AS import_started_at FROM imports JOIN pairs ON pairs.id = imports.pair_id ORDER BY pairs.id',
      )
      .all()
      .map((r) => {
        const pair = pairFromRow(r);
        checkImportRow(pair, r.import_pid, r.import_started_at);
        return { pair, pid: r.import_pid as number, startedAt: r.import_started_at as number };
      });
  }

  /**
   * Deletes up to `limit` rows of an unfinished import's pair from remaps,
   * retired and events, in that order; returns how many went (0: none left,
   * and its pair row can go in one small transaction).
   */
  deleteRows(pairId: number, limit: number): number {
    const sql = [
      'DELETE FROM remaps WHERE pair_id = ? AND main_block IN (SELECT main_block FROM remaps WHERE pair_id = ? LIMIT ?)',
      'DELETE FROM retired WHERE pair_id = ? AND spare_block IN (SELECT spare_block FROM retired WHERE pair_id = ? LIMIT ?)',
      'DELETE FROM events WHERE pair_id = ? AND id IN (SELECT id FROM events WHERE pair_id = ? LIMIT ?)',
    ];
    let deleted = 0;
    for (const s of sql) {
      if (deleted >= limit) break;
      deleted += this.db.prepare<[number, number, number]>(s).run(pairId, pairId, limit - deleted).changes;
    }
    return deleted;
  }
}
