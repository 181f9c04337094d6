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
 * device_ids: for a pair whose main or spare is an image file, that file's
 * identity (identify.ts fileId: inode and birth time) when it was last made,
 * imported or served. Discovery adopts a file at another path as that device
 * only when it is the same file (a rename), never a copy (which may miss
 * writes made since it was taken). A row that is not well-formed counts as
 * none (the old rule: identical tables).
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
import { excerpt } from '../errors.js';
import { REBUILD_HINT } from './faults.js';
import { openSqlite, type SqliteDatabase } from './sqlite.js';

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
CREATE TABLE IF NOT EXISTS device_ids (
  pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  file_id TEXT NOT NULL,
  PRIMARY KEY (pair_id, role)
) WITHOUT ROWID;
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

/** Why an existing file is refused at open, with what to do about it (Store.open turns it into a RemapfsError). */
export class SchemaRefusal extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'SchemaRefusal';
  }
}

/**
 * The tables schema version 1 gained within itself, stage by stage (the health tables, then bad_sectors, imports,
 * table_prints), and the column it gained: an older file gets them at open. A file made at some stage has every
 * table of that stage and of the stages before, so a file that lacks a table of a stage but has one of the same
 * stage or a later one is not an older file: a table was dropped, and it is refused.
 */
const ADDED_STAGES: readonly (readonly string[])[] = [['events', 'config', 'scan_state', 'slow_blocks', 'report_state'], ['bad_sectors'], ['imports'], ['table_prints'], ['device_ids']];
const ADDED_COLUMNS = new Set(['pairs.spare_hwid']);

/** A declared table missing from a file that is not an older version 1 file (ADDED_STAGES), or undefined. */
function droppedTable(missing: ReadonlySet<string>): string | undefined {
  const stage = (t: string): number => ADDED_STAGES.findIndex((s) => s.includes(t));
  for (const t of missing) {
    const k = stage(t);
    if (k < 0) return t; // there from the start
    // Every table of this stage and of the later ones must be missing too.
    if (ADDED_STAGES.slice(k).some((s) => s.some((other) => !missing.has(other)))) return t;
  }
  return undefined;
}

let declared: Map<string, string[]> | undefined;

/** The tables this code declares (SCHEMA and PRINTS_SCHEMA) and their columns, read once from an in-memory database. */
export function declaredTables(): ReadonlyMap<string, readonly string[]> {
  if (declared) return declared;
  const mem = openSqlite(':memory:');
  try {
    mem.exec(SCHEMA);
    mem.exec(PRINTS_SCHEMA);
    declared = tableColumns(mem);
  } finally {
    mem.close();
  }
  return declared;
}

/** A file's tables (SQLite's own left out) and their columns. */
function tableColumns(db: SqliteDatabase): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) != 'sqlite_' ORDER BY name").pluck<string>().all()) {
    out.set(t, db.prepare<[string]>('SELECT name FROM pragma_table_info(?)').pluck<string>().all(t));
  }
  return out;
}

const DAMAGED = 'it was damaged or changed by hand; ' + REBUILD_HINT;

/**
 * What is wrong with an existing file's schema, looked at before anything is changed (a file that is not ours,
 * or of another version, is left exactly as it was): the meta table and its schema version, then every table and
 * column the code declares, except those schema version 1 gained within itself (ADDED_TABLES, ADDED_COLUMNS).
 */
function existingSchemaProblem(db: SqliteDatabase, tables: ReadonlyMap<string, readonly string[]>): SchemaRefusal | undefined {
  const meta = tables.get('meta');
  if (!meta) return new SchemaRefusal('not a remapfs database (it has other tables)', 'pass the remapfs database with --db');
  if (!meta.includes('key') || !meta.includes('value')) return new SchemaRefusal('not a remapfs database (its meta table has no key and value columns)', 'pass the remapfs database with --db');
  const version = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck<unknown>().get();
  if (version !== String(SCHEMA_VERSION)) {
    const shown = typeof version === 'string' || typeof version === 'number' ? excerpt(String(version)) : '(none)';
    return new SchemaRefusal(`unsupported schema version ${shown}; this remapfs reads version ${SCHEMA_VERSION}`, 'use the remapfs that wrote it, or rebuild the database from the spares with "remapfs import"');
  }
  const dropped = droppedTable(new Set([...declaredTables().keys()].filter((t) => !tables.has(t))));
  if (dropped) return new SchemaRefusal(`the database has no table ${dropped}`, DAMAGED);
  for (const [table, columns] of declaredTables()) {
    const have = tables.get(table);
    if (!have) continue; // a table added within version 1 (droppedTable)
    const missing = columns.find((c) => !have.includes(c) && !ADDED_COLUMNS.has(`${table}.${c}`));
    if (missing) return new SchemaRefusal(`the database's table ${table} has no column ${missing}`, DAMAGED);
  }
  return undefined;
}

/**
 * Sets the pragmas and creates or updates the schema of a freshly opened file.
 * A file without tables gets the schema only when `create` is set (init,
 * import…): a read-only command never writes one into an empty file. An
 * existing file is checked first (existingSchemaProblem) and refused, unchanged,
 * with a SchemaRefusal. Throws SQLite's errors as they are; the caller turns
 * them into a RemapfsError.
 */
export function prepareSchema(db: SqliteDatabase, opts: { create: boolean } = { create: true }): void {
  db.pragma('busy_timeout = 10000');
  // Look before changing anything: a file that is not ours, of another version or damaged is left exactly as it was.
  const tables = tableColumns(db);
  if (tables.size === 0 && !opts.create) {
    throw new SchemaRefusal('not a remapfs database (it has no tables)', 'run "remapfs init" first, or pass --db');
  }
  if (tables.size > 0) {
    const problem = existingSchemaProblem(db, tables);
    if (problem) throw problem;
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  if (tables.size === 0) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(SCHEMA);
      db.exec(PRINTS_SCHEMA);
      db.prepare<[string, string]>('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
      db.exec('COMMIT');
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
    // Another process may have made the file meanwhile (it held the lock first): its version must be ours too.
    const version = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck<string | number | null>().get();
    if (version !== String(SCHEMA_VERSION)) throw new SchemaRefusal(`unsupported schema version ${version == null ? '(none)' : excerpt(String(version))}; this remapfs reads version ${SCHEMA_VERSION}`);
    return;
  }
  if ([...declaredTables().keys()].some((t) => t !== 'table_prints' && !tables.has(t))) {
    db.exec(SCHEMA); // tables added within schema version 1 (ADDED_STAGES; every other table is there: existingSchemaProblem)
  }
  if (!tables.get('pairs')?.includes('spare_hwid')) {
    db.exec('ALTER TABLE pairs ADD COLUMN spare_hwid TEXT'); // a column added within schema version 1
  }
  if (!tables.has('table_prints')) addTablePrints(db); // added within schema version 1
}
