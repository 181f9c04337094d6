/**
 * The bad_sectors table: 512-byte sectors of a pair's main known to be
 * unreadable (imported lists, read errors, lost sectors), one row per sector;
 * the first source recorded for a sector stays.
 */
import type { SqliteDatabase } from './sqlite.js';

export class BadSectorRepo {
  constructor(private readonly db: SqliteDatabase) {}

  add(pairId: number, sectors: readonly number[], source: string, time: number): void {
    const stmt = this.db.prepare<[number, number, string, number]>('INSERT OR IGNORE INTO bad_sectors (pair_id, sector, source, time) VALUES (?, ?, ?, ?)');
    for (const s of sectors) stmt.run(pairId, s, source, time);
  }

  list(pairId: number): number[] {
    return this.db.prepare<[number]>('SELECT sector FROM bad_sectors WHERE pair_id = ? ORDER BY sector').pluck<number>().all(pairId);
  }
}
