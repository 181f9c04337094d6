/**
 * The SQLite store (better-sqlite3, WAL, synchronous=FULL): pairs, remap
 * entries, retired spare blocks and running daemons. A committed transaction is
 * durable, so a remap is committed here before the write it serves is
 * acknowledged.
 *
 * Concurrency: one daemon and any number of CLI processes share the file;
 * writers take the write lock with BEGIN IMMEDIATE and wait up to busy_timeout.
 *
 * Files: a database remapfs creates is 0600 in a directory it creates 0700,
 * whatever the umask (SQLite gives the -wal and -shm files the database's
 * mode). One that could not be set up (a full disk) is removed again.
 *
 * Identity: the (dev, ino) of the file at open is kept; watchFile() makes
 * every transaction first check that the path still names that file, so a
 * daemon whose database was deleted or replaced refuses metadata changes
 * instead of committing them to a file nobody will read again.
 */
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { RemapfsError } from '../errors';
import type { RemapReason } from '../format/slot-codec';

export const SCHEMA_VERSION = 1;

export type RemapState = 'remapped' | 'pending';

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

export interface RemapRecord {
  mainBlock: number;
  /** -1 for a pending block that has no spare block yet. */
  spareBlock: number;
  reason: RemapReason;
  state: RemapState;
  lostSectors: number;
  createdAt: number;
}

export interface MountRecord {
  mountpoint: string;
  pid: number;
  socket: string;
  startedAt: number;
}

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
CREATE TABLE IF NOT EXISTS mounts (
  mountpoint TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  socket TEXT NOT NULL,
  started_at INTEGER NOT NULL
);
`;

export const DEFAULT_DB_PATH = '/var/lib/remapfs/remapfs.db';

export class Store {
  readonly path: string;
  readonly db: Database.Database;

  private constructor(dbPath: string, db: Database.Database) {
    this.path = dbPath;
    this.db = db;
  }

  /**
   * Opens the database. With create=false a missing file is an error (read-only
   * commands never create one); a file that is not a remapfs database is refused.
   */
  static open(dbPath: string, opts: { create: boolean }): Store {
    const abs = path.resolve(dbPath);
    const exists = fs.existsSync(abs);
    if (!exists && !opts.create) {
      throw new RemapfsError('open database', abs, 'no such file', 'run "remapfs init" first, or pass --db');
    }
    if (exists && !fs.statSync(abs).isFile()) throw new RemapfsError('open database', abs, 'not a regular file');
    let db: Database.Database | undefined;
    let created = false;
    try {
      if (!exists) created = createPrivateFile(abs);
      db = new Database(abs);
      db.pragma('busy_timeout = 10000');
      // Look before changing anything: a file that is not ours is left exactly as it was.
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      if (tables.length > 0 && !tables.includes('meta')) {
        throw new Error('not a remapfs database (it has other tables)');
      }
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      if (tables.length === 0) {
        db.exec('BEGIN IMMEDIATE');
        db.exec(SCHEMA);
        db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
        db.exec('COMMIT');
      } else if (!tables.includes('bad_sectors')) {
        db.exec(SCHEMA); // tables added within schema version 1
      }
      if (tables.length > 0 && !(db.prepare('SELECT name FROM pragma_table_info(\'pairs\')').pluck().all() as string[]).includes('spare_hwid')) {
        db.exec('ALTER TABLE pairs ADD COLUMN spare_hwid TEXT'); // a column added within schema version 1
      }
      const version = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get() as string | undefined;
      if (version !== String(SCHEMA_VERSION)) {
        throw new Error(`unsupported schema version ${version ?? '(none)'}; this remapfs reads version ${SCHEMA_VERSION}`);
      }
    } catch (err) {
      db?.close();
      if (created) removeDatabaseFiles(abs);
      throw databaseError('open database', abs, err) ?? new RemapfsError('open database', abs, sqliteCause(err), REBUILD_HINT);
    }
    const store = new Store(abs, db);
    store.identity = fileIdentity(abs);
    store.created = created;
    return store;
  }

  /** True when this process created the file at open. */
  created = false;
  private identity: string | undefined;
  private watching = false;
  /** Why the database can no longer be written, once the path names another file or none. */
  lost: string | undefined;

  /** From now on every transaction first checks that the path still names the file that was opened. */
  watchFile(): void {
    this.watching = true;
  }

  /** Compares the path with the file opened; returns (and remembers) why it is lost, or undefined. */
  checkFile(): string | undefined {
    if (this.lost) return this.lost;
    const now = fileIdentity(this.path);
    if (now === this.identity) return undefined;
    this.lost = now === undefined ? 'the database file was deleted' : 'the database file was replaced by another file';
    return this.lost;
  }

  /**
   * Removes a database this process created and that holds nothing (no pair,
   * no mount, no event): what a failed `init` must not leave behind.
   */
  removeIfUnused(): void {
    if (!this.created || !this.db.open) return;
    const used = this.db.prepare('SELECT (SELECT count(*) FROM pairs) + (SELECT count(*) FROM mounts) + (SELECT count(*) FROM events)').pluck().get() as number;
    if (used > 0) return;
    this.db.close();
    removeDatabaseFiles(this.path);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Runs fn in a BEGIN IMMEDIATE transaction (takes the write lock at once). */
  transaction<T>(fn: () => T): T {
    if (this.watching) {
      const lost = this.checkFile();
      if (lost) throw new RemapfsError('write database', this.path, lost, LOST_HINT);
    }
    return this.db.transaction(fn).immediate();
  }

  listPairs(): PairRecord[] {
    return (this.db.prepare('SELECT * FROM pairs ORDER BY name').all() as PairRow[]).map(pairFromRow);
  }

  getPair(name: string): PairRecord | undefined {
    const row = this.db.prepare('SELECT * FROM pairs WHERE name = ?').get(name) as PairRow | undefined;
    return row ? pairFromRow(row) : undefined;
  }

  insertPair(input: Omit<PairRecord, 'id' | 'mainLabel' | 'mainHwid' | 'spareHwid'> & Partial<Pick<PairRecord, 'mainLabel' | 'mainHwid' | 'spareHwid'>>): PairRecord {
    const p = { mainLabel: false, mainHwid: null, spareHwid: null, ...input };
    const info = this.db
      .prepare('INSERT INTO pairs (name, uuid, main_path, spare_path, block_size, main_bytes, spare_bytes, created_at, meta_seq, main_label, main_hwid, spare_hwid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(p.name, p.uuid, p.mainPath, p.sparePath, p.blockSize, p.mainBytes, p.spareBytes, p.createdAt, p.metaSeq, p.mainLabel ? 1 : 0, p.mainHwid, p.spareHwid);
    return { ...p, id: Number(info.lastInsertRowid) };
  }

  getPairByUuid(uuid: string): PairRecord | undefined {
    const row = this.db.prepare('SELECT * FROM pairs WHERE uuid = ?').get(uuid) as PairRow | undefined;
    return row ? pairFromRow(row) : undefined;
  }

  setMainLabel(pairId: number, hwid: string | null): void {
    this.db.prepare('UPDATE pairs SET main_label = 1, main_hwid = ? WHERE id = ?').run(hwid, pairId);
  }

  /** Records where a pair's devices are now (after a rename, a move or a reboot). */
  updatePaths(pairId: number, mainPath: string, sparePath: string, spareHwid?: string | null): void {
    this.db.prepare('UPDATE pairs SET main_path = ?, spare_path = ? WHERE id = ?').run(mainPath, sparePath, pairId);
    if (spareHwid !== undefined) this.db.prepare('UPDATE pairs SET spare_hwid = ? WHERE id = ?').run(spareHwid, pairId);
  }

  setMetaSeq(pairId: number, seq: number): void {
    this.db.prepare('UPDATE pairs SET meta_seq = ? WHERE id = ?').run(seq, pairId);
  }

  metaSeq(pairId: number): number {
    return this.db.prepare('SELECT meta_seq FROM pairs WHERE id = ?').pluck().get(pairId) as number;
  }

  /** Replaces a pair's remap table and retired list (callers wrap this in a transaction). */
  replaceTable(pairId: number, remaps: readonly RemapRecord[], retired: ReadonlyArray<{ spareBlock: number; createdAt: number }>, seq: number): void {
    this.db.prepare('DELETE FROM remaps WHERE pair_id = ?').run(pairId);
    this.db.prepare('DELETE FROM retired WHERE pair_id = ?').run(pairId);
    for (const r of remaps) this.putRemap(pairId, r);
    for (const r of retired) this.putRetired(pairId, r.spareBlock, r.createdAt);
    this.setMetaSeq(pairId, seq);
  }

  retiredWithTimes(pairId: number): Array<{ spareBlock: number; createdAt: number }> {
    return (this.db.prepare('SELECT spare_block, created_at FROM retired WHERE pair_id = ? ORDER BY spare_block').raw().all(pairId) as Array<[number, number]>).map(
      ([spareBlock, createdAt]) => ({ spareBlock, createdAt }),
    );
  }

  remaps(pairId: number): RemapRecord[] {
    const rows = this.db
      .prepare('SELECT main_block, spare_block, reason, state, lost_sectors, created_at FROM remaps WHERE pair_id = ? ORDER BY main_block')
      .raw()
      .all(pairId) as Array<[number, number | null, RemapReason, RemapState, number, number]>;
    return rows.map(([mainBlock, spareBlock, reason, state, lostSectors, createdAt]) => ({
      mainBlock,
      spareBlock: spareBlock ?? -1,
      reason,
      state,
      lostSectors,
      createdAt,
    }));
  }

  retired(pairId: number): number[] {
    return this.db.prepare('SELECT spare_block FROM retired WHERE pair_id = ? ORDER BY spare_block').pluck().all(pairId) as number[];
  }

  putRemap(pairId: number, r: RemapRecord): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO remaps (pair_id, main_block, spare_block, reason, state, lost_sectors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(pairId, r.mainBlock, r.spareBlock < 0 ? null : r.spareBlock, r.reason, r.state, r.lostSectors, r.createdAt);
  }

  addEvent(pairId: number, time: number, kind: string, block: number | null, value: number | null, detail: string | null): void {
    this.db.prepare('INSERT INTO events (pair_id, time, kind, block, value, detail) VALUES (?, ?, ?, ?, ?, ?)').run(pairId, time, kind, block, value, detail);
  }

  putRetired(pairId: number, spareBlock: number, createdAt: number): void {
    this.db.prepare('INSERT OR IGNORE INTO retired (pair_id, spare_block, created_at) VALUES (?, ?, ?)').run(pairId, spareBlock, createdAt);
  }

  /**
   * Remapped blocks (without the label block, which is structure, not a
   * failure), the label block, pending blocks, retired spare blocks. Spare
   * blocks in use = remapped + label + retired.
   */
  counts(pairId: number): { remapped: number; label: number; pending: number; retired: number } {
    const remapped = this.db.prepare("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason != 'label'").pluck().get(pairId) as number;
    const label = this.db.prepare("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason = 'label'").pluck().get(pairId) as number;
    const pending = this.db.prepare("SELECT count(*) FROM remaps WHERE pair_id = ? AND state = 'pending'").pluck().get(pairId) as number;
    const retired = this.db.prepare('SELECT count(*) FROM retired WHERE pair_id = ?').pluck().get(pairId) as number;
    return { remapped, label, pending, retired };
  }

  /** Remapped blocks by reason. */
  remapsByReason(pairId: number): Record<string, number> {
    const rows = this.db.prepare("SELECT reason, count(*) AS n FROM remaps WHERE pair_id = ? AND state = 'remapped' AND reason != 'label' GROUP BY reason").all(pairId) as Array<{ reason: string; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  /** Records 512-byte sectors of main known to be unreadable (import, read errors, lost sectors). */
  addBadSectors(pairId: number, sectors: readonly number[], source: string, time: number): void {
    const stmt = this.db.prepare('INSERT OR IGNORE INTO bad_sectors (pair_id, sector, source, time) VALUES (?, ?, ?, ?)');
    for (const s of sectors) stmt.run(pairId, s, source, time);
  }

  badSectors(pairId: number): number[] {
    return this.db.prepare('SELECT sector FROM bad_sectors WHERE pair_id = ? ORDER BY sector').pluck().all(pairId) as number[];
  }

  putMount(m: MountRecord): void {
    this.db.prepare('INSERT OR REPLACE INTO mounts (mountpoint, pid, socket, started_at) VALUES (?, ?, ?, ?)').run(m.mountpoint, m.pid, m.socket, m.startedAt);
  }

  deleteMount(mountpoint: string, pid: number): void {
    this.db.prepare('DELETE FROM mounts WHERE mountpoint = ? AND pid = ?').run(mountpoint, pid);
  }

  /** Mount records whose daemon process is still alive. */
  liveMounts(): MountRecord[] {
    const rows = this.db.prepare('SELECT mountpoint, pid, socket, started_at FROM mounts').all() as Array<{ mountpoint: string; pid: number; socket: string; started_at: number }>;
    return rows
      .map((r) => ({ mountpoint: r.mountpoint, pid: r.pid, socket: r.socket, startedAt: r.started_at }))
      .filter((m) => processAlive(m.pid));
  }
}

interface PairRow {
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

function pairFromRow(r: PairRow): PairRecord {
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

/** True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** What to do about a damaged database. */
export const REBUILD_HINT = 'move it aside, then rebuild it from the spares with "remapfs import --main <main> --spare <spare>" for each pair, or restore a backup';
const LOST_HINT = 'stop the daemon and start it again with the right database; the metadata slots on the spare hold every remap ("remapfs import" rebuilds a database from them)';

function sqliteCause(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'SQLITE_NOTADB') return 'file is not a database (corrupt or overwritten)';
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_CORRUPT_INDEX') return 'database disk image is malformed';
  if (code === 'SQLITE_CANTOPEN') return 'cannot open the file';
  if (code === 'SQLITE_FULL') return 'the disk is full';
  return err instanceof Error ? err.message : String(err);
}

/**
 * A SQLite failure of the database itself (damage, a full disk) as a
 * one-line error with what to do; undefined for anything else.
 */
export function databaseError(op: string, dbPath: string, err: unknown): RemapfsError | undefined {
  if (err instanceof RemapfsError) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new RemapfsError(op, dbPath, sqliteCause(err), REBUILD_HINT);
  if (code.startsWith('SQLITE_FULL')) return new RemapfsError(op, dbPath, sqliteCause(err), 'free some space on its file system');
  if (code.startsWith('SQLITE_IOERR')) return new RemapfsError(op, dbPath, err instanceof Error ? err.message : code, 'the disk holding the database may be failing');
  return undefined;
}

/** PRAGMA quick_check: 'ok', or the first problems SQLite reports. */
export function quickCheck(store: Store): string {
  let rows: string[];
  try {
    rows = store.db.prepare('PRAGMA quick_check(5)').pluck().all() as string[];
  } catch (err) {
    return sqliteCause(err);
  }
  return rows.length === 1 && rows[0] === 'ok' ? 'ok' : rows.join('; ').replace(/\*\*\* in database main \*\*\*\s*/g, '').replace(/\s*\n\s*/g, ' ');
}

/** "dev:ino" of the file at `p`, or undefined when there is none. */
function fileIdentity(p: string): string | undefined {
  try {
    const st = fs.statSync(p, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Creates the database file 0600 (and missing directories 0700), whatever the
 * umask; false when another process created it first.
 */
function createPrivateFile(abs: string): boolean {
  const first = fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o700 });
  if (first !== undefined) {
    for (let d = path.dirname(abs); d.length >= first.length; d = path.dirname(d)) {
      fs.chmodSync(d, 0o700);
      if (d === first) break;
    }
  }
  try {
    const fd = fs.openSync(abs, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw err;
  }
}

function removeDatabaseFiles(abs: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(abs + suffix, { force: true });
}
