/**
 * The database's tables and how an existing file is brought up to date.
 *
 * Invariants: a file with tables but no `meta` table is not ours and is left
 * exactly as it was (nothing is changed before that check). Schema version 1
 * grew within itself (the health, bad_sectors and imports tables,
 * pairs.spare_hwid); prepareSchema adds what an older file lacks, inside
 * version 1.
 *
 * imports: one row per pair whose import is not finished (lib/discovery/
 * import-steps.ts). Such a pair's rows are written in many transactions; until
 * its imports row is deleted, in the import's last one, the pair is no pair
 * for anyone (PairRepo's lookups leave it out) but its name and UUID stay
 * taken. `pid` is the importing process, for a leftover whose devices are gone.
 *
 * table_prints: each pair's table fingerprint (lib/format/fingerprint.ts) over
 * its remaps and retired rows together, kept by triggers in the transaction
 * of every change, so that opening a pair reads one row instead of
 * aggregating a million. A file from before it gets the table, the triggers
 * and every pair's sums in one transaction. The row is a shortcut only: a
 * missing or malformed row, or one that does not match the slots, sends the
 * caller back to the aggregate over the rows (lib/meta/reconcile.ts).
 */
import { PRINT_COLUMNS, printTriggersSql } from '../format/fingerprint.js';
import { remapColumns, retiredColumns, rowPrintParts } from './remaps.js';
import type { SqliteDatabase } from './sqlite.js';

export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  uuid TEXT NOT NULL UNIQUE,
  main_path TEXT NOT NULL,
  spare_path TEXT NOT NULL,
  block_size INTEGER NOT NULL,
  main_bytes INTEGER NOT NULL,
  spare_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  meta_seq INTEGER NOT NULL DEFAULT 0,
  main_label INTEGER NOT NULL DEFAULT 0,
  main_hwid TEXT,
  spare_hwid TEXT
);
CREATE TABLE IF NOT EXISTS remaps (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  main_block INTEGER NOT NULL,
  spare_block INTEGER,
  reason TEXT NOT NULL,
  state TEXT NOT NULL,
  lost_sectors INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (pair_id, main_block),
  UNIQUE (pair_id, spare_block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  spare_block INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (pair_id, spare_block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  block INTEGER,
  value REAL,
  detail TEXT
);
CREATE INDEX IF NOT EXISTS events_by_pair_time ON events (pair_id, kind, time);
CREATE TABLE IF NOT EXISTS config (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (pair_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scan_state (
  pair_id INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
  cursor_block INTEGER NOT NULL,
  pass_started_at INTEGER,
  passes_completed INTEGER NOT NULL DEFAULT 0,
  last_pass_finished_at INTEGER,
  max_block_scanned INTEGER NOT NULL DEFAULT -1,
  next_due_at INTEGER NOT NULL DEFAULT 0,
  last_summary TEXT
);
CREATE TABLE IF NOT EXISTS slow_blocks (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  block INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (pair_id, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_state (
  pair_id INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
  reported_at INTEGER NOT NULL,
  remap_events INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bad_sectors (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  sector INTEGER NOT NULL,
  source TEXT NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (pair_id, sector)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS imports (
  pair_id INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
  pid INTEGER NOT NULL,
  started_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mounts (
  mountpoint TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  socket TEXT NOT NULL,
  started_at INTEGER NOT NULL
);
`;

const PRINTS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS table_prints (
  pair_id INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
  ${PRINT_COLUMNS.map((c) => `${c} INTEGER NOT NULL`).join(', ')}
);`,
  // A new pair starts with an empty table (a leftover row of a reused id is replaced).
  `CREATE TRIGGER IF NOT EXISTS pairs_print_insert AFTER INSERT ON pairs BEGIN
  INSERT OR REPLACE INTO table_prints (pair_id, ${PRINT_COLUMNS.join(', ')}) VALUES (NEW.id, ${PRINT_COLUMNS.map(() => '0').join(', ')});
END;`,
  printTriggersSql('table_prints', 'remaps', remapColumns('ROW.')),
  printTriggersSql('table_prints', 'retired', retiredColumns('ROW.')),
].join('\n');

/** Adds table_prints, its triggers and every pair's sums to a file that lacks them (inside one write transaction). */
function addTablePrints(db: SqliteDatabase): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    // Another process may have done it while this one waited for the lock.
    if (!db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'table_prints'").pluck<string>().get()) {
      db.exec(PRINTS_SCHEMA);
      const insert = db.prepare<[number, ...number[]]>(`INSERT OR REPLACE INTO table_prints (pair_id, ${PRINT_COLUMNS.join(', ')}) VALUES (${['?', ...PRINT_COLUMNS.map(() => '?')].join(', ')})`);
      for (const id of db.prepare('SELECT id FROM pairs').pluck<number>().all()) insert.run(id, ...rowPrintParts(db, id));
    }
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}

/**
 * Sets the pragmas and creates or updates the schema of a freshly opened file.
 * Throws a plain Error (or SQLite's) when the file is not a usable remapfs
 * database; the caller turns that into a RemapfsError.
 */
export function prepareSchema(db: SqliteDatabase): void {
  db.pragma('busy_timeout = 10000');
  // Look before changing anything: a file that is not ours is left exactly as it was.
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck<string>().all();
  if (tables.length > 0 && !tables.includes('meta')) {
    throw new Error('not a remapfs database (it has other tables)');
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  if (tables.length === 0) {
    db.exec('BEGIN IMMEDIATE');
    db.exec(SCHEMA);
    db.exec(PRINTS_SCHEMA);
    db.prepare<[string, string]>('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    db.exec('COMMIT');
  } else if (!tables.includes('bad_sectors') || !tables.includes('imports')) {
    db.exec(SCHEMA); // tables added within schema version 1
  }
  if (tables.length > 0 && !db.prepare("SELECT name FROM pragma_table_info('pairs')").pluck<string>().all().includes('spare_hwid')) {
    db.exec('ALTER TABLE pairs ADD COLUMN spare_hwid TEXT'); // a column added within schema version 1
  }
  const version = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck<string>().get();
  if (version !== String(SCHEMA_VERSION)) {
    throw new Error(`unsupported schema version ${version ?? '(none)'}; this remapfs reads version ${SCHEMA_VERSION}`);
  }
  if (tables.length > 0 && !tables.includes('table_prints')) addTablePrints(db); // added within schema version 1
}
