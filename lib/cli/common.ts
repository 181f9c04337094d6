/** Helpers shared by the CLI commands. */
import { RemapfsError, UsageError } from '../errors';
import { databaseError, DEFAULT_DB_PATH, MountRecord, PairRecord, Store } from '../store/db';

export interface GlobalArgs {
  db: string;
}

export function dbPath(argv: { db?: string }): string {
  return argv.db || process.env.REMAPFS_DB || DEFAULT_DB_PATH;
}

/**
 * Opens the store, runs fn, closes the store. A database this call created is
 * removed again when fn fails before putting anything in it; damage and a full
 * disk become one-line errors with a hint.
 */
export async function withStore<T>(argv: { db?: string }, create: boolean, fn: (store: Store) => Promise<T> | T): Promise<T> {
  const store = Store.open(dbPath(argv), { create });
  try {
    return await fn(store);
  } catch (err) {
    try {
      store.removeIfUnused();
    } catch {
      // keep the first error
    }
    throw databaseError('use database', store.path, err) ?? err;
  } finally {
    store.close();
  }
}

export function requirePair(store: Store, name: string): PairRecord {
  const pair = store.getPair(name);
  if (!pair) {
    const known = store.listPairs().map((p) => p.name);
    throw new RemapfsError('find pair', name, 'no such pair', known.length ? `known pairs: ${known.join(', ')}` : 'the database has no pairs yet');
  }
  return pair;
}

/** The live daemon serving this database, if any. */
export function liveDaemon(store: Store): MountRecord | undefined {
  return store.liveMounts()[0];
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/** Parses a non-negative integer argument, or throws a UsageError naming it. */
export function parseCount(what: string, raw: unknown): number {
  const s = String(raw).trim();
  if (!/^\d+$/.test(s)) throw new UsageError(`${what} must be a non-negative integer, got "${String(raw)}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is too large: ${s}`);
  return n;
}
