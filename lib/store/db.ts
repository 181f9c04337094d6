/**
 * The SQLite store (better-sqlite3, WAL, synchronous=FULL): pairs, remap
 * entries, retired spare blocks, health state and running daemons. A
 * committed transaction is durable, so a remap is committed here before the
 * write it serves is acknowledged.
 *
 * All SQL lives in lib/store: one repository per area (pairs.ts, remaps.ts,
 * events.ts, health.ts, bad-sectors.ts, mounts.ts, imports.ts) over the declared subset
 * of better-sqlite3 (sqlite.ts). The handle is private to Store; everything
 * else goes through the repositories.
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
import * as path from 'path';
import * as fs from 'fs';
import { RemapfsError } from '../errors.js';
import { BadSectorRepo } from './bad-sectors.js';
import { EventRepo } from './events.js';
import { databaseError, LOST_HINT, REBUILD_HINT, sqliteCause } from './faults.js';
import { createPrivateFile, fileIdentity, removeDatabaseFiles } from './files.js';
import { HealthRepo } from './health.js';
import { ImportRepo } from './imports.js';
import { MountRepo } from './mounts.js';
import { PairRepo } from './pairs.js';
import { RemapRepo } from './remaps.js';
import { prepareSchema, SchemaRefusal } from './schema.js';
import { openSqlite, type SqliteDatabase } from './sqlite.js';

export type { PairRecord, NewPair, PairClaim } from './pairs.js';
export type { UnfinishedImport } from './imports.js';
export type { RemapReason, RemapState, RemapRecord, RetiredRecord } from './remaps.js';
export type { MountRecord } from './mounts.js';
export type { HistoryEvent } from './events.js';
export type { ConfigRow, ScanStateRow } from './health.js';
export { processAlive } from './mounts.js';
export { databaseError, REBUILD_HINT } from './faults.js';
export { SCHEMA_VERSION } from './schema.js';

/** The daemon's SQLite page cache, in KiB (SQLite's own default). */
export const DAEMON_CACHE_KIB = 2000;

export const DEFAULT_DB_PATH = '/var/lib/remapfs/remapfs.db';

export class Store {
  readonly path: string;
  private readonly db: SqliteDatabase;
  readonly pairs: PairRepo;
  readonly remaps: RemapRepo;
  readonly events: EventRepo;
  readonly health: HealthRepo;
  readonly badSectors: BadSectorRepo;
  readonly mounts: MountRepo;
  readonly imports: ImportRepo;

  private constructor(dbPath: string, db: SqliteDatabase) {
    this.path = dbPath;
    this.db = db;
    this.pairs = new PairRepo(db);
    this.remaps = new RemapRepo(db, this.pairs);
    // Readers that leave bad rows out say so through warn, whatever it is by then.
    this.events = new EventRepo(db, (line) => this.warn(line));
    this.health = new HealthRepo(db, (line) => this.warn(line));
    this.badSectors = new BadSectorRepo(db);
    this.mounts = new MountRepo(db);
    this.imports = new ImportRepo(db);
  }

  /**
   * Opens the database. With create=false a missing file is an error (read-only
   * commands never create one), and so is a file without tables (an empty file
   * is not given a schema); a file that is not a remapfs database, one of
   * another schema version, or one that lacks a table or column the code
   * declares, is refused before anything in it is changed.
   */
  static open(dbPath: string, opts: { create: boolean }): Store {
    const abs = path.resolve(dbPath);
    const exists = fs.existsSync(abs);
    if (!exists && !opts.create) {
      throw new RemapfsError('open database', abs, 'no such file', 'run "remapfs init" first, or pass --db');
    }
    if (exists && !fs.statSync(abs).isFile()) throw new RemapfsError('open database', abs, 'not a regular file');
    let db: SqliteDatabase | undefined;
    let created = false;
    try {
      if (!exists) created = createPrivateFile(abs);
      db = openSqlite(abs);
      prepareSchema(db, opts);
    } catch (err) {
      db?.close();
      if (created) removeDatabaseFiles(abs);
      if (err instanceof SchemaRefusal) throw new RemapfsError('open database', abs, err.message, err.hint ?? REBUILD_HINT);
      throw databaseError('open database', abs, err) ?? new RemapfsError('open database', abs, sqliteCause(err), REBUILD_HINT);
    }
    const store = new Store(abs, db);
    store.identity = fileIdentity(abs);
    store.created = created;
    return store;
  }

  /** True when this process created the file at open. */
  created = false;
  /**
   * Where a reader that sets aside a bad row it can do without (the scan progress in lib/health/history.ts; events,
   * slow_blocks and report_state in events.ts and health.ts) says so, in one line: nowhere by default; the CLI prints
   * it on stderr.
   */
  warn: (line: string) => void = () => undefined;
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
    const used = this.db.prepare('SELECT (SELECT count(*) FROM pairs) + (SELECT count(*) FROM mounts) + (SELECT count(*) FROM events)').pluck<number>().get() as number;
    if (used > 0) return;
    this.db.close();
    removeDatabaseFiles(this.path);
  }

  /**
   * Bounds this connection's page cache to DAEMON_CACHE_KIB (better-sqlite3's default is 16 MB): a
   * long-running daemon's cache only holds pages once the start-up has scanned its remap table, so it
   * keeps none of that memory.
   */
  limitCache(): void {
    this.db.pragma(`cache_size = -${DAEMON_CACHE_KIB}`);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Runs fn in a BEGIN IMMEDIATE transaction (takes the write lock at once); a throw rolls it back. */
  transaction<T>(fn: () => T): T {
    if (this.watching) {
      const lost = this.checkFile();
      if (lost) throw new RemapfsError('write database', this.path, lost, LOST_HINT);
    }
    return this.db.transaction(fn).immediate();
  }

  /** PRAGMA quick_check: 'ok', or the first problems SQLite reports. */
  quickCheck(): string {
    let rows: string[];
    try {
      rows = this.db.prepare('PRAGMA quick_check(5)').pluck<string>().all();
    } catch (err) {
      return sqliteCause(err);
    }
    return rows.length === 1 && rows[0] === 'ok' ? 'ok' : rows.join('; ').replace(/\*\*\* in database main \*\*\*\s*/g, '').replace(/\s*\n\s*/g, ' ');
  }
}

