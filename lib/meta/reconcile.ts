/**
 * Keeping SQLite and the five slots in agreement.
 *
 * The source of truth is whichever holds the highest sequence number: the
 * newest valid slot, or the database (pairs.meta_seq). When the database is
 * chosen because it is ahead, or because it disagrees with slots of the same
 * sequence, the slots are rewritten with a new, higher sequence number, so a
 * sequence number never names two different tables. Sequence numbers only
 * grow: a torn slot's header still counts towards the highest seen.
 */
import { RemapfsError } from '../errors';
import { SLOT_COUNT } from '../remap/layout';
import { PairRecord, RemapRecord, Store } from '../store/db';
import { SlotEntry } from './codec';
import { SlotReport, SlotSet } from './slots';
import { MetaState, PairIdentity } from './state';

export interface Reconciliation {
  slots: SlotReport[];
  databaseSequence: number;
  /** Where the table in force came from. */
  source: 'slots' | 'database' | 'memory';
  sourceSlot?: number;
  sequence: number;
  /** Slots that are invalid, stale or different from the table in force. */
  staleSlots: number[];
  databaseAgrees: boolean;
  consistent: boolean;
  /** What was repaired (only when writing). */
  repaired: string[];
  state: MetaState;
}

export function identityOf(pair: PairRecord): PairIdentity {
  return { uuid: pair.uuid, name: pair.name, blockSize: pair.blockSize, mainBytes: pair.mainBytes, spareBytes: pair.spareBytes };
}

/** The database's table as slot entries (remaps by main block, then retired blocks). */
export function databaseEntries(store: Store, pairId: number): SlotEntry[] {
  const out: SlotEntry[] = store.remaps(pairId).map((r) => ({
    mainBlock: r.mainBlock,
    spareBlock: r.spareBlock,
    createdAt: r.createdAt,
    reason: r.reason,
    state: r.state,
    lostSectors: r.lostSectors,
  }));
  for (const r of store.retiredWithTimes(pairId)) {
    out.push({ mainBlock: -1, spareBlock: r.spareBlock, createdAt: r.createdAt, reason: 'none', state: 'retired', lostSectors: 0 });
  }
  return out;
}

export function recordOf(e: SlotEntry): RemapRecord {
  if (e.state === 'retired' || e.reason === 'none') throw new Error('a retired entry is not a remap record');
  return { mainBlock: e.mainBlock, spareBlock: e.spareBlock, reason: e.reason, state: e.state, lostSectors: e.lostSectors, createdAt: e.createdAt };
}

/** Order-independent fingerprint of a table: equal tables give equal strings. */
export function fingerprint(entries: readonly SlotEntry[]): string {
  let sum = 0;
  let xor = 0;
  for (const e of entries) {
    let h = 0x811c9dc5;
    for (const v of [e.mainBlock, e.spareBlock, e.createdAt % 0x100000000, Math.floor(e.createdAt / 0x100000000), e.lostSectors, e.state.length * 31 + e.state.charCodeAt(0), e.reason.length * 31 + e.reason.charCodeAt(0)]) {
      h = Math.imul(h ^ (v | 0), 0x01000193);
      h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    }
    sum = (sum + (h >>> 0)) % 0x100000000;
    xor = (xor ^ h) >>> 0;
  }
  return `${entries.length}:${sum}:${xor}`;
}

export interface ReconcileOptions {
  /** Repair: rewrite the database and stale slots. Without it, only report. */
  write: boolean;
  /** A table already in force (a running daemon's): it is the source of truth. */
  inForce?: MetaState;
  log?: (line: string) => void;
}

export function reconcile(store: Store, pair: PairRecord, slots: SlotSet, opts: ReconcileOptions): Reconciliation {
  const log = opts.log ?? (() => undefined);
  const reports = slots.readAll({ uuid: pair.uuid });
  const dbSeq = store.metaSeq(pair.id);
  const dbEntries = databaseEntries(store, pair.id);
  const dbPrint = fingerprint(dbEntries);
  let newest: SlotReport | undefined;
  let highestSeen = dbSeq;
  for (const r of reports) {
    if (r.sequence !== undefined && r.header?.uuid === pair.uuid) highestSeen = Math.max(highestSeen, r.sequence);
    if (r.valid && (!newest || (r.sequence ?? 0) > (newest.sequence ?? 0))) newest = r;
  }
  const foreign = reports.find((r) => r.reason?.startsWith('belongs to another pair'));
  if (!newest && foreign && !reports.some((r) => r.header?.uuid === pair.uuid)) {
    // Never overwrite another pair's metadata: the stored spare path points at the wrong device.
    throw new RemapfsError('open spare of pair', pair.name, `${pair.sparePath} holds the metadata of another pair (${foreign.header?.name}, uuid ${foreign.header?.uuid})`, 'wrong device? "remapfs discover" finds where the pair is now');
  }
  const identity = identityOf(pair);
  let state: MetaState;
  let source: Reconciliation['source'];
  if (opts.inForce) {
    state = opts.inForce;
    source = 'memory';
  } else if (newest && (newest.sequence ?? 0) > dbSeq) {
    state = new MetaState(identity, slots.layout, newest.sequence ?? 0, newest.entries ?? []);
    source = 'slots';
  } else if (newest && newest.sequence === dbSeq && fingerprint(newest.entries ?? []) === dbPrint) {
    state = new MetaState(identity, slots.layout, dbSeq, newest.entries ?? []);
    source = 'slots';
  } else {
    // The database is ahead, or the slots are all bad, or they disagree at the same sequence.
    const bump = newest !== undefined || reports.some((r) => r.sequence !== undefined);
    state = new MetaState(identity, slots.layout, bump ? highestSeen + 1 : dbSeq, dbEntries);
    source = 'database';
  }
  const statePrint = fingerprint(state.entries);
  const databaseAgrees = dbSeq === state.sequence && dbPrint === statePrint;
  const staleSlots = reports
    .filter((r) => !r.valid || r.sequence !== state.sequence || fingerprint(r.entries ?? []) !== statePrint)
    .map((r) => r.index);
  const repaired: string[] = [];
  if (opts.write) {
    if (!databaseAgrees) {
      const remaps = state.entries.filter((e) => e.state !== 'retired').map(recordOf);
      const retired = state.entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
      store.transaction(() => store.replaceTable(pair.id, remaps, retired, state.sequence));
      const what = source === 'slots' ? `slot ${newest?.index} (sequence ${state.sequence})` : `the ${source} table (sequence ${state.sequence})`;
      repaired.push(`database restored from ${what}`);
    }
    if (staleSlots.length) {
      const failed = slots.writeAll(state, staleSlots);
      for (const i of staleSlots) {
        const r = reports[i];
        const why = r?.valid ? `stale (sequence ${r.sequence})` : `invalid: ${r?.reason}`;
        repaired.push(failed.includes(i) ? `slot ${i} could not be rewritten (${why})` : `slot ${i} rewritten (${why})`);
      }
      if (failed.length === SLOT_COUNT) {
        throw new RemapfsError('repair metadata', pair.name, 'no metadata slot could be written', 'the spare device may be failing');
      }
    }
    for (const line of repaired) log(`remapfs: ${pair.name}: ${line}`);
  }
  const sourceSlot = source === 'slots' ? newest?.index : undefined;
  return {
    slots: reports,
    databaseSequence: dbSeq,
    source,
    ...(sourceSlot !== undefined ? { sourceSlot } : {}),
    sequence: state.sequence,
    staleSlots,
    databaseAgrees,
    consistent: databaseAgrees && staleSlots.length === 0,
    repaired,
    state,
  };
}
