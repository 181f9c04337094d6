/**
 * The bad_sectors table: 512-byte sectors of a pair's main known to be
 * unreadable (imported lists, read errors, lost sectors), one row per sector;
 * the first source recorded for a sector stays.
 */
import { badRowError, rangeProblem, rowBounds } from './rows.js';
import type { SqliteDatabase } from './sqlite.js';

export class BadSectorRepo {
  constructor(private readonly db: SqliteDatabase) {}

  add(pairId: number, sectors: readonly number[], source: string, time: number): void {
    const stmt = this.db.prepare<[number, number, string, number]>('INSERT OR IGNORE INTO bad_sectors (pair_id, sector, source, time) VALUES (?, ?, ?, ?)');
    for (const s of sectors) stmt.run(pairId, s, source, time);
  }

  /** The pair's bad sectors, ascending; a row whose sector is not an integer on the virtual device is refused with one line. */
  list(pairId: number): number[] {
    const sectors = this.db.prepare<[number]>('SELECT sector FROM bad_sectors WHERE pair_id = ? ORDER BY sector').pluck<unknown>().all(pairId);
    if (sectors.length === 0) return [];
    const bounds = rowBounds(this.db, pairId);
    for (const s of sectors) {
      const bad = rangeProblem('bad sector', s, 0, bounds.sectors, 'device');
      if (bad) throw badRowError('bad sectors', bounds, bad);
    }
    return sectors as number[];
  }
}
