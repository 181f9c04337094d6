/**
 * The database side of an import, in steps (steps.ts), so that a pair with a
 * million entries never holds the daemon's serving thread for seconds.
 *
 * Stages, each its own transaction:
 *  1. begin: the name and UUID are checked against every pair and every
 *     unfinished import; the pair row and its `imports` row are inserted
 *     (lib/store/schema.ts, imports.ts);
 *  2. rows: the remaps and retired blocks, IMPORT_CHUNK entries per
 *     transaction in table order; then one history event per remapped or
 *     pending entry, IMPORT_CHUNK per transaction, oldest first
 *     (MetaState.historyOrder): the rows and their order are what the single
 *     INSERT ... SELECT ... ORDER BY created_at, main_block wrote before;
 *  3. (optional) the caller's check of the pair against its slots;
 *  4. finish: the `imports` row is deleted, and the pair is a pair.
 *
 * Crash safety: until 4 the pair is in no lookup that serves users
 * (lib/store/pairs.ts: not in list, status, or a daemon's pairs) and its name
 * and UUID stay taken. The importer holds the devices' lock
 * (lib/block/device-lock.ts) from before 1 until after 4. An import that
 * fails removes its rows (the same chunked removal) before it fails.
 *
 * Leftovers (a process killed between 1 and 4) are removed by
 * removeInterrupted, a chunk at a time and then the pair row, when their
 * devices' lock can be taken at once: whoever imports a pair holds that
 * lock, so an import in progress is never removed under it. When a device
 * cannot be opened (it went away), a leftover is removed only once the
 * process that began it is gone. It runs at the start of every import
 * (remapfs import, discover --import, hot-plug) and init: those are what a
 * leftover gets in the way of (its name, UUID and devices are taken), and
 * they lock nothing while it runs.
 */
import { DeviceBusyError, DeviceLock } from '../block/device-lock.js';
import { RemapfsError } from '../errors.js';
import type { SlotEntry } from '../format/slot-codec.js';
import { recordOf } from '../meta/reconcile.js';
import type { MetaState } from '../meta/state.js';
import { type HistoryEvent, type NewPair, type PairRecord, processAlive, type Store, type UnfinishedImport } from '../store/db.js';
import type { Steps } from './steps.js';
import { recordFileIds } from './file-ids.js';

/** Entries (or events) per transaction: some tens of milliseconds each on a loaded two-core machine. */
export const IMPORT_CHUNK = 16384;

export interface StagedImport {
  pair: NewPair;
  state: MetaState;
  /** Positions of the history events' entries, oldest first (MetaState.historyOrder). */
  historyOrder: Float64Array;
  /** More checks for the first transaction (devices used by no other pair). */
  check?: () => void;
  /** Run after the rows, before the pair becomes visible (a check against the slots); a throw fails the import. */
  beforeFinish?: (pair: PairRecord) => void;
  /** Entries per transaction (default IMPORT_CHUNK; tests use small ones). */
  chunkEntries?: number;
}

/** Writes an import's rows in steps (see the design note); returns the pair, visible from the last step on. */
export function* writeImport(store: Store, imp: StagedImport): Steps<PairRecord> {
  const pair = store.transaction(() => {
    refuseClaims(store, imp.pair);
    imp.check?.();
    const p = store.pairs.insert(imp.pair);
    recordFileIds(store, p);
    store.imports.begin(p.id, process.pid, Date.now());
    return p;
  });
  yield 'begin';
  try {
    yield* writeRows(store, pair.id, imp.state, imp.historyOrder, imp.chunkEntries ?? IMPORT_CHUNK);
    if (imp.beforeFinish) {
      imp.beforeFinish(pair);
      yield 'check';
    }
    store.transaction(() => {
      if (!store.imports.finish(pair.id)) throw new RemapfsError('import', pair.name, 'its unfinished rows were removed meanwhile', 'import it again');
    });
  } catch (err) {
    try {
      yield* removeRows(store, pair.id, imp.chunkEntries ?? IMPORT_CHUNK);
    } catch {
      // Left for removeInterrupted: the pair stays invisible.
    }
    throw err;
  }
  return pair;
}

function refuseClaims(store: Store, p: NewPair): void {
  const claims = store.pairs.claims(p.name, p.uuid);
  for (const c of [...claims.filter((x) => x.pair.uuid === p.uuid), ...claims.filter((x) => x.pair.uuid !== p.uuid)]) {
    const what = c.pair.uuid === p.uuid ? `pair ${c.pair.name} with uuid ${p.uuid}` : `a pair named ${p.name} (uuid ${c.pair.uuid})`;
    if (c.importPid !== null) throw new RemapfsError('import', p.name, `${what} is being imported by pid ${c.importPid}`, 'wait until that import is done');
    if (c.pair.uuid === p.uuid) throw new RemapfsError('import', p.name, `${what} is already in the database`);
    throw new RemapfsError('import', p.name, 'a pair with this name already exists', 'choose another name');
  }
}

function* writeRows(store: Store, pairId: number, state: MetaState, order: Float64Array, chunk: number): Steps<void> {
  for (let from = 0; from < state.entryCount; from += chunk) {
    const entries = state.entriesIn(from, from + chunk);
    const remaps = entries.filter((e) => e.state !== 'retired').map(recordOf);
    const retired = entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
    store.transaction(() => {
      store.remaps.putMany(pairId, remaps);
      store.remaps.putRetiredMany(pairId, retired);
    });
    yield 'rows';
  }
  // The history went with the old database; the remap times in the slots rebuild the trend.
  for (let from = 0; from < order.length; from += chunk) {
    const events = Array.from(order.subarray(from, from + chunk), (pos) => historyEvent(state.entryAt(pos)));
    store.transaction(() => store.events.addMany(pairId, events));
    yield 'rows';
  }
}

/** The event a remapped or pending entry's commit adds (MetaJournal.commitRemap). */
function historyEvent(e: SlotEntry): HistoryEvent {
  return { time: e.createdAt, kind: e.state === 'pending' ? 'pending' : e.reason === 'label' ? 'label' : 'remap', block: e.mainBlock, value: e.spareBlock < 0 ? -1 : e.spareBlock, detail: e.reason };
}

/** Removes an unfinished import's rows a chunk at a time, then its pair row. */
function* removeRows(store: Store, pairId: number, chunk: number): Steps<void> {
  while (store.transaction(() => store.imports.deleteRows(pairId, chunk)) > 0) yield 'cleanup';
  store.transaction(() => {
    if (store.imports.isUnfinished(pairId)) store.pairs.delete(pairId);
  });
}

/**
 * Removes every interrupted import that may be removed (see the design note);
 * returns their names. An import in progress, here or in another process, is
 * left alone.
 */
export function* removeInterrupted(store: Store, chunk = IMPORT_CHUNK): Steps<string[]> {
  const removed: string[] = [];
  for (const u of store.imports.unfinished()) {
    const lock = lockLeftover(u);
    if (lock === 'busy') continue;
    try {
      yield* removeRows(store, u.pair.id, chunk);
      removed.push(u.pair.name);
      yield 'cleanup';
    } finally {
      lock?.release();
    }
  }
  return removed;
}

/** The leftover's devices locked; undefined when they cannot be opened and its process is gone; 'busy' otherwise. */
function lockLeftover(u: UnfinishedImport): DeviceLock | undefined | 'busy' {
  try {
    return DeviceLock.acquire([u.pair.mainPath, u.pair.sparePath], { op: 'remove interrupted import', object: `pair ${u.pair.name}`, waitMs: 0 });
  } catch (err) {
    if (err instanceof DeviceBusyError) return 'busy';
    // A device that cannot be opened (gone) or locked: whoever began the import decides while it lives.
    return processAlive(u.pid) ? 'busy' : undefined;
  }
}
