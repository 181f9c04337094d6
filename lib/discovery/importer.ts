/**
 * Bringing a pair into a database from its devices: the table comes from the
 * newest valid metadata slot on the spare; the main must carry the pair's
 * label (or, for a pair made without one, at least its size). Used by
 * `remapfs import`, `remapfs discover --import` and the daemon's hot-plug.
 *
 * One implementation in steps (importSteps; steps.ts): interrupted imports
 * are removed first, then, under the devices' lock, the table is checked
 * (one step), and the database is written in many small transactions
 * (import-steps.ts: the pair stays invisible until the last). importPair runs
 * the steps back to back (the CLI); importPairStepped lets the event loop
 * turn between them (the daemon's hot-plug).
 *
 * Hot-plug reads and validates the table in the discovery worker and passes
 * it here (`table`): under the lock, the slots' seal (their five headers) is
 * read again; if it still holds, the table is used as it is. If not, the CLI
 * reads it here; hot-plug refuses (StaleTableError: the serving thread reads
 * no table) and tries again at its next rescan. When every copy held the
 * table, nothing needs repair and the database was just written from it, so
 * the table is handed on (`adopted`) for the pair's open to use without
 * reading the slots again; otherwise the pair is checked against its slots
 * (checkOffline) before it becomes visible.
 */
import { type DeviceIdentity, FileDevice, identify, sameStorage } from '../block/file-device.js';
import { DeviceLock } from '../block/device-lock.js';
import { isPathRefusal } from '../block/disk-error.js';
import { RemapfsError } from '../errors.js';
import { type AdoptedTable, allCopiesCurrent, locateMetadata, stillSealed } from '../meta/locate.js';
import type { SlotHeader } from '../format/slot-codec.js';
import { spareLayout } from '../format/layout.js';
import { MetaState } from '../meta/state.js';
import type { TableRead } from './probe-worker.js';
import { checkOffline } from '../meta/verify.js';
import type { PairRecord, Store } from '../store/db.js';
import { hardwareId } from './hardware.js';
import { removeInterrupted, writeImport } from './import-steps.js';
import { readLabel } from './label.js';
import { runNow, runStepped, type SteppedOptions, type Steps, type StepStats } from './steps.js';

export interface ImportResult {
  pair: PairRecord;
  remappedBlocks: number;
  sourceSlot: number;
  repaired: string[];
  /** The table read off the serving thread, when it was used and every copy holds it (for openPair). */
  adopted?: AdoptedTable;
}

/**
 * Refuses devices that already belong to a pair of this database: by path, by
 * device identity, or by sharing storage (a loop device over a pair's image).
 */
export function checkDevicesFree(store: Store, name: string, main: DeviceIdentity, spare: DeviceIdentity, except?: number): void {
  for (const p of store.pairs.list()) {
    if (p.id === except) continue;
    for (const [role, dev] of [['main', main], ['spare', spare]] as const) {
      for (const theirs of [p.mainPath, p.sparePath]) {
        let same = theirs === dev.realPath;
        try {
          same ||= sameStorage(identify(theirs), dev);
        } catch (err) {
          // Their device is not here now; the path comparison stands.
          if (!isPathRefusal(err)) throw err;
        }
        if (same) throw new RemapfsError('pair', name, `${role} ${dev.realPath} is already used by pair ${p.name} (${theirs})`, 'a device can belong to one pair only');
      }
    }
  }
}

/** Refuses a main and a spare that share storage: a loop device over the other's image, a partition of it, or the same device. */
export function checkDistinct(op: string, name: string, main: DeviceIdentity, spare: DeviceIdentity): void {
  if (sameStorage(main, spare)) {
    const how = main.key === spare.key ? 'are the same device' : 'share storage';
    throw new RemapfsError(op, name, `main ${main.realPath} and spare ${spare.realPath} ${how} (${main.extent.chain.at(-1)})`, 'pair two different devices');
  }
}

export interface ImportOptions {
  /** The name to give the pair (default: the one in its metadata). */
  name?: string;
  /** How long to wait for another process to let go of the devices (default: fail at once). */
  lockWaitMs?: number;
  /** The spare's table as the discovery worker read it (see the design note). */
  table?: TableRead;
  /** A worker's table that no longer holds is read again here (default), or refused with StaleTableError. */
  rereadStale?: boolean;
  /** Entries per transaction (import-steps.ts; tests use small ones). */
  chunkEntries?: number;
  /**
   * A table of more entries whose copies need repair is refused instead of
   * repaired (RepairElsewhereError): the daemon's hot-plug, where the repair
   * would be one long step on the serving thread. Default: no limit.
   */
  maxRepairEntries?: number;
}

/** The slots changed after the worker read the table: read it again (off the serving thread) and retry. */
export class StaleTableError extends RemapfsError {}

/** The copies need a repair too large for the serving thread (maxRepairEntries): `remapfs import` does it. */
export class RepairElsewhereError extends RemapfsError {}

/** Imports the pair held by these devices, every step at once (see the design note). */
export function importPair(store: Store, mainPath: string, sparePath: string, opts: ImportOptions = {}): ImportResult {
  return runNow(importSteps(store, mainPath, sparePath, opts));
}

/** Imports the pair held by these devices with the event loop turning between steps; with the steps' times. */
export function importPairStepped(store: Store, mainPath: string, sparePath: string, opts: ImportOptions & SteppedOptions = {}): Promise<{ value: ImportResult; stats: StepStats }> {
  return runStepped(importSteps(store, mainPath, sparePath, opts), { op: 'import', object: sparePath, ...opts });
}

/**
 * The import's steps. The devices are locked from the check of the table to
 * the last transaction, so what is read cannot change underneath, and nobody
 * else (another database's daemon, say) is writing to them.
 */
export function* importSteps(store: Store, mainPath: string, sparePath: string, opts: ImportOptions = {}): Steps<ImportResult> {
  const main = identify(mainPath);
  const spare = identify(sparePath);
  checkDistinct('import', sparePath, main, spare);
  yield* removeInterrupted(store, opts.chunkEntries);
  const lock = DeviceLock.acquire([main.realPath, spare.realPath], {
    op: 'import',
    object: `${main.realPath} and ${spare.realPath}`,
    waitMs: opts.lockWaitMs ?? 0,
  });
  try {
    return yield* importLocked(store, main, spare, opts);
  } finally {
    lock.release();
  }
}

interface Table {
  header: SlotHeader;
  sourceSlot: number;
  state: MetaState;
  historyOrder: Float64Array;
  adopted?: AdoptedTable;
}

/**
 * The table: the worker's if its seal still holds (then `adopted` is set),
 * else read here (or refused: `rereadStale` false); a worker that found none
 * is believed (the next rescan after a change tries again). Why copies were
 * refused goes to `rejected`.
 */
function tableOf(spare: DeviceIdentity, read: TableRead | undefined, rereadStale: boolean, rejected: string[]): Table | undefined {
  if (read && 'rejected' in read) {
    rejected.push(...read.rejected);
    return undefined;
  }
  const dev = FileDevice.open(spare.realPath, { readOnly: true, mode: 'buffered' });
  try {
    if (read && stillSealed(dev, read.table)) {
      const t = read.table;
      const h = t.header;
      const state = MetaState.fromPages({ uuid: h.uuid, name: h.name, blockSize: h.blockSize, mainBytes: h.mainBytes, spareBytes: h.spareBytes }, spareLayout(h.spareBytes, h.blockSize), h.sequence, h.entryCount, t.pages);
      return { header: h, sourceSlot: t.sourceSlot, state, historyOrder: t.historyOrder, adopted: t };
    }
    if (read && !rereadStale) throw new StaleTableError('import', spare.realPath, 'its metadata slots changed after the discovery worker read them', 'read again at the next rescan');
    const found = locateMetadata(dev, rejected);
    return found && { header: found.newest.header, sourceSlot: found.newest.index, state: found.state, historyOrder: found.state.historyOrder() };
  } finally {
    dev.close();
  }
}

function* importLocked(store: Store, main: DeviceIdentity, spare: DeviceIdentity, opts: ImportOptions): Steps<ImportResult> {
  const rejected: string[] = [];
  const found = tableOf(spare, opts.table, opts.rereadStale ?? true, rejected);
  if (!found) {
    const why = rejected.length ? `no valid remapfs metadata slot found (${rejected.length} refused; ${rejected[0]})` : 'no valid remapfs metadata slot found';
    throw new RemapfsError('import', spare.realPath, why, 'is this the spare of a pair?');
  }
  const h = found.header;
  if (main.sizeBytes !== h.mainBytes) {
    throw new RemapfsError('import', main.realPath, `has ${main.sizeBytes} bytes but pair ${h.name} was made with a main of ${h.mainBytes} bytes`, 'wrong main device?');
  }
  if (spare.sizeBytes !== h.spareBytes) throw new RemapfsError('import', spare.realPath, `has ${spare.sizeBytes} bytes but the metadata says ${h.spareBytes}`);
  const mdev = FileDevice.open(main.realPath, { readOnly: true, mode: 'buffered' });
  let label;
  try {
    label = readLabel(mdev);
  } finally {
    mdev.close();
  }
  const tally = found.state.tally();
  const hadLabel = tally.label > 0;
  if (label && label.uuid !== h.uuid) {
    throw new RemapfsError('import', main.realPath, `carries the label of pair ${label.name} (uuid ${label.uuid}), not of pair ${h.name} (uuid ${h.uuid})`, 'wrong main device');
  }
  if (!label && hadLabel) {
    throw new RemapfsError('import', main.realPath, `carries no remapfs label, but pair ${h.name}'s main was labelled`, 'wrong main device: the same size, but another disk?');
  }
  const pairName = opts.name ?? h.name;
  // Every copy held the worker's table, and the database is written from it: nothing to check or repair.
  const adopted = found.adopted && allCopiesCurrent(found.adopted) ? found.adopted : undefined;
  if (!adopted && opts.maxRepairEntries !== undefined && h.entryCount > opts.maxRepairEntries) {
    throw new RepairElsewhereError(
      'import',
      spare.realPath,
      `pair ${h.name}'s metadata copies disagree, and the repair of its ${h.entryCount} entries would stall every served pair`,
      `run \`remapfs import --spare ${spare.realPath} --main ${main.realPath}\` to import and repair it; the daemon then attaches it`,
    );
  }
  yield 'prepare';
  let repaired: string[] = [];
  const pair = yield* writeImport(store, {
    pair: {
      name: pairName,
      uuid: h.uuid,
      mainPath: main.realPath,
      sparePath: spare.realPath,
      blockSize: h.blockSize,
      mainBytes: h.mainBytes,
      spareBytes: h.spareBytes,
      createdAt: Date.now(),
      metaSeq: h.sequence,
      mainLabel: !!label,
      mainHwid: label ? hardwareId(main.realPath) ?? null : null,
      spareHwid: hardwareId(spare.realPath) ?? null,
    },
    state: found.state,
    historyOrder: found.historyOrder,
    check: () => checkDevicesFree(store, pairName, main, spare),
    ...(opts.chunkEntries ? { chunkEntries: opts.chunkEntries } : {}),
    beforeFinish: adopted
      ? undefined
      : (p: PairRecord) => {
          repaired = checkOffline(store, p, { write: true }).repaired;
        },
  });
  return {
    pair,
    remappedBlocks: tally.remapped,
    sourceSlot: found.sourceSlot,
    repaired,
    ...(adopted ? { adopted } : {}),
  };
}
