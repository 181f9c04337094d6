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
import { SlotReport, SlotSet, tableDigest } from './slots';
import { MetaState, PairIdentity } from './state';
import { Fingerprint, fingerprintSql } from './fingerprint';

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
  const f = new Fingerprint();
  for (const e of entries) f.add(e.mainBlock, e.spareBlock, e.createdAt, e.lostSectors, e.state, e.reason);
  return f.value();
}

const REMAPS_PRINT_SQL = fingerprintSql('remaps', 'pair_id = ?', {
  mainBlock: 'main_block',
  spareBlock: 'ifnull(spare_block, -1)',
  createdAt: 'created_at',
  lostSectors: 'lost_sectors',
  state: 'state',
  reason: 'reason',
});
const RETIRED_PRINT_SQL = fingerprintSql('retired', 'pair_id = ?', {
  mainBlock: '-1',
  spareBlock: 'spare_block',
  createdAt: 'created_at',
  lostSectors: '0',
  state: "'retired'",
  reason: "'none'",
});

/** The database's fingerprint, computed by SQLite in one aggregate query per table. */
export function databaseFingerprint(store: Store, pairId: number): string {
  const f = new Fingerprint();
  for (const sql of [REMAPS_PRINT_SQL, RETIRED_PRINT_SQL]) {
    f.addParts(store.db.prepare(sql).raw().get(pairId) as number[]);
  }
  return f.value();
}

function stateDigest(state: MetaState): string {
  return tableDigest(state.entryCount, state.table());
}

/** The fingerprint of the table in force, read from its pages. */
export function stateFingerprint(state: MetaState): string {
  const f = new Fingerprint();
  state.forEachRaw((m, sp, t, lost, st, r) => f.addCodes(m, sp, t, lost, st, r));
  return f.value();
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
  // The slot whose header claims the highest sequence is fully checked and its pages kept. The others are
  // checked by CRC: each is then current only if its digest equals the table in force's, else rewritten.
  let likely = -1;
  let likelySeq = -1;
  for (let i = 0; i < SLOT_COUNT; i++) {
    const seq = slots.peekSequence(i);
    if (seq !== undefined && seq > likelySeq) [likely, likelySeq] = [i, seq];
  }
  const reports: SlotReport[] = [];
  for (let i = 0; i < SLOT_COUNT; i++) reports.push(slots.read(i, { uuid: pair.uuid }, i === likely ? 'pages' : 'crc'));
  const dbSeq = store.metaSeq(pair.id);
  const dbPrint = databaseFingerprint(store, pair.id);
  let newest: SlotReport | undefined;
  let highestSeen = dbSeq;
  for (const r of reports) {
    if (r.sequence !== undefined && r.header?.uuid === pair.uuid) highestSeen = Math.max(highestSeen, r.sequence);
    if (r.valid && (!newest || (r.sequence ?? 0) > (newest.sequence ?? 0))) newest = r;
  }
  let newestState: MetaState | undefined;
  if (newest) {
    const full = newest.pages ? newest : slots.read(newest.index, { uuid: pair.uuid }, 'pages');
    newest = full.valid && full.sequence === newest.sequence && full.pages ? full : undefined;
    if (newest?.pages && newest.header) newestState = MetaState.fromPages(identityOf(pair), slots.layout, newest.sequence ?? 0, newest.header.entryCount, newest.pages);
  }
  const foreign = reports.find((r) => r.reason?.startsWith('belongs to another pair'));
  if (!newest && foreign && !reports.some((r) => r.header?.uuid === pair.uuid)) {
    // Never overwrite another pair's metadata: the stored spare path points at the wrong device.
    throw new RemapfsError('open spare of pair', pair.name, `${pair.sparePath} holds the metadata of another pair (${foreign.header?.name}, uuid ${foreign.header?.uuid})`, 'wrong device? "remapfs discover" finds where the pair is now');
  }
  const newestPrint = newestState ? stateFingerprint(newestState) : undefined;
  const identity = identityOf(pair);
  let state: MetaState;
  let source: Reconciliation['source'];
  if (opts.inForce) {
    state = opts.inForce;
    source = 'memory';
  } else if (newestState && newestState.sequence > dbSeq) {
    state = newestState;
    source = 'slots';
  } else if (newestState && newestState.sequence === dbSeq && newestPrint === dbPrint) {
    state = newestState;
    source = 'slots';
  } else {
    // The database is ahead, or the slots are all bad, or they disagree at the same sequence.
    const bump = newest !== undefined || reports.some((r) => r.sequence !== undefined);
    state = new MetaState(identity, slots.layout, bump ? highestSeen + 1 : dbSeq, databaseEntries(store, pair.id));
    source = 'database';
  }
  const statePrint = source === 'slots' && newestPrint ? newestPrint : stateFingerprint(state);
  const databaseAgrees = dbSeq === state.sequence && dbPrint === statePrint;
  const digest = stateDigest(state);
  const staleSlots = reports.filter((r) => !r.valid || r.sequence !== state.sequence || r.tableDigest !== digest).map((r) => r.index);
  const repaired: string[] = [];
  if (opts.write) {
    if (!databaseAgrees) {
      const all = state.entries;
      const remaps = all.filter((e) => e.state !== 'retired').map(recordOf);
      const retired = all.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
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
    slots: reports.map(({ pages: _pages, ...r }) => r),
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
