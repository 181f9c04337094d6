/** Helpers shared by the CLI commands. */
import { RemapfsError, UsageError } from '../errors.js';
import { databaseError, DEFAULT_DB_PATH, type MountRecord, type PairRecord, Store } from '../store/db.js';
import { processAlive } from '../store/mounts.js';
import { DeviceBusyError } from '../block/device-lock.js';
import { localTransport, type LocalOptions } from '../pair/local.js';
import { pairOps, type PairOps } from '../pair/operations.js';
import { socketTransport } from '../daemon/control.js';

export interface GlobalArgs {
  db: string;
}

/**
 * The database: --db, else REMAPFS_DB, else the default. A value that is set but empty (`REMAPFS_DB=`, `--db ''`) is
 * a usage error, never the default: a script whose variable came out empty must not use another database.
 */
export function dbPath(argv: { db?: string }): string {
  if (argv.db !== undefined) {
    if (argv.db === '') throw new UsageError('--db needs a value, not an empty string');
    return argv.db;
  }
  const env = process.env.REMAPFS_DB;
  if (env !== undefined) {
    if (env === '') throw new UsageError('REMAPFS_DB is set but empty; set it to the database file, or unset it for the default');
    return env;
  }
  return DEFAULT_DB_PATH;
}

/**
 * Opens the store, runs fn, closes the store. A database this call created is
 * removed again when fn fails before putting anything in it; damage and a full
 * disk become one-line errors with a hint.
 */
export async function withStore<T>(argv: { db?: string }, create: boolean, fn: (store: Store) => Promise<T> | T): Promise<T> {
  const store = Store.open(dbPath(argv), { create });
  const warned = new Set<string>();
  store.warn = (line) => {
    if (warned.has(line)) return;
    warned.add(line);
    process.stderr.write(`remapfs: warning: ${line}\n`);
  };
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
  const pair = store.pairs.get(name);
  if (!pair) {
    const unfinished = store.imports.unfinished().find((u) => u.pair.name === name);
    if (unfinished) {
      const running = processAlive(unfinished.pid);
      throw new RemapfsError(
        'find pair',
        name,
        `its import has not finished (begun by process ${unfinished.pid}, which ${running ? 'is still running' : 'is gone'})`,
        running ? 'wait for that import to finish' : `run "remapfs import" for its devices again: it removes the interrupted import first`,
      );
    }
    const known = store.pairs.list().map((p) => p.name);
    throw new RemapfsError('find pair', name, 'no such pair', known.length ? `known pairs: ${known.join(', ')}` : 'the database has no pairs yet');
  }
  return pair;
}

/** The live daemon serving this database, if any. */
export function liveDaemon(store: Store): MountRecord | undefined {
  return store.mounts.live()[0];
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

/** Parses a non-negative integer argument (plain decimal digits, nothing else), or throws a UsageError naming it. */
export function parseCount(what: string, raw: unknown): number {
  const s = String(raw);
  if (!/^\d+$/.test(s)) throw new UsageError(`${what} must be a non-negative integer, got "${String(raw)}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is too large: ${s}`);
  return n;
}

/** How long a CLI command waits for another remapfs process to let go of a pair's devices. */
export const CLI_LOCK_WAIT_MS = Number(process.env.REMAPFS_LOCK_WAIT_MS ?? 10000);

/**
 * The operations on a pair (lib/pair/operations.ts), through the daemon
 * serving this database, or else in this process (the pair opened under its
 * device lock when the operation needs it). While another process holds the
 * devices, a call waits (up to CLI_LOCK_WAIT_MS) and looks again for a daemon
 * each time, so a daemon that starts meanwhile is used as soon as it
 * registers. Once a call went to a daemon, later calls go to the same one.
 * A pair the daemon does not serve is worked on here.
 */
export function opsFor(store: Store, pair: PairRecord, local: LocalOptions = {}): PairOps {
  let daemon: MountRecord | undefined;
  let notServed = false;
  return pairOps(async (op, args) => {
    const deadline = Date.now() + CLI_LOCK_WAIT_MS;
    for (;;) {
      if (!notServed) daemon ??= liveDaemon(store);
      if (daemon && !notServed) {
        try {
          return await socketTransport(daemon.socket, pair.name)(op, args);
        } catch (err) {
          // The daemon does not serve this pair (made after it started, or its devices were missing or busy then): the
          // operation runs here, under the devices' lock, as with no daemon; the daemon takes that lock before it opens one.
          if (!(err instanceof RemapfsError && err.op === 'find pair')) throw err;
          notServed = true;
          continue;
        }
      }
      try {
        return await localTransport(store, pair, local)(op, args);
      } catch (err) {
        if (!(err instanceof DeviceBusyError) || Date.now() >= deadline || err.serving) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });
}
