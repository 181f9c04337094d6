/**
 * The part of better-sqlite3 that remapfs uses, declared (in the manner of
 * kysely): strict types over a small subset, so the rest of lib/store depends
 * on this interface and not on the whole library.
 *
 * Owns: the only import of better-sqlite3 under lib/. Every statement is typed
 * by its caller with its bind parameters and its row (`prepare<P, R>`);
 * `pluck()` and `raw()` give the first column or the row as a tuple.
 * Invariant: nothing outside lib/store sees a SqliteDatabase (Store keeps it
 * private).
 */
import Database from 'better-sqlite3';

/** What SQLite binds and returns (remapfs stores no blobs). */
export type SqlValue = number | string | bigint | null;

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** A prepared statement with bind parameters P, returning rows R. */
export interface Statement<P extends readonly SqlValue[], R> {
  run(...params: P): RunResult;
  get(...params: P): R | undefined;
  all(...params: P): R[];
  /** The first column of each row instead of the row: V is that column's type. */
  pluck<V>(): Statement<P, V>;
  /** Each row as an array of its columns: V is that tuple. */
  raw<V extends readonly unknown[]>(): Statement<P, V>;
}

export interface SqliteDatabase {
  readonly open: boolean;
  prepare<P extends readonly SqlValue[] = [], R = never>(sql: string): Statement<P, R>;
  exec(sql: string): void;
  pragma(source: string): void;
  /** better-sqlite3's transaction wrapper; remapfs only runs it with BEGIN IMMEDIATE. */
  transaction<T>(fn: () => T): { immediate(): T };
  close(): void;
}

/**
 * Opens (or creates) the SQLite file at `file`. The cast is the one place the
 * declaration meets the library: @types/better-sqlite3 types bind parameters
 * as a union with named parameters, which this subset never uses.
 */
export function openSqlite(file: string): SqliteDatabase {
  return new Database(file) as unknown as SqliteDatabase;
}
