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
import { RemapfsError } from '../errors.js';
import { SLOT_COUNT } from '../format/layout.js';
import type { PairRecord, RemapRecord, Store } from '../store/db.js';
import type { SlotEntry } from '../format/slot-codec.js';
import type { SlotExpectation, SlotReport, SlotSet } from './slots.js';
import { type AdoptedTable, allCopiesCurrent, stillSealed } from './locate.js';
import { MAX_SEQUENCE, tableProblem } from '../format/validate.js';
import { MetaState, type PairIdentity } from './state.js';
import { Fingerprint } from '../format/fingerprint.js';

export interface Reconciliation {
  slots: SlotReport[];
  databaseSequence: number;
  /** Where the table in force came from. */
  source: 'slots' | 'database' | 'memory';
  sourceSlot?: number;
  sequence: number;
  /** The highest sequence number any copy's header or the database names (torn copies too): the next change goes above it. */
  highestSeen: number;
  /** Slots that are invalid, stale or different from the table in force. */
  staleSlots: number[];
  databaseAgrees: boolean;
  consistent: boolean;
  /** What was repaired (only when writing). */
  repaired: string[];
  /** Slots that had to be rewritten and could not be (only when writing). */
  unwritten: number[];
  state: MetaState;
}

export function identityOf(pair: PairRecord): PairIdentity {
  return { uuid: pair.uuid, name: pair.name, blockSize: pair.blockSize, mainBytes: pair.mainBytes, spareBytes: pair.spareBytes };
}

/** The database's table as slot entries (remaps by main block, then retired blocks). */
export function databaseEntries(store: Store, pairId: number): SlotEntry[] {
  const out: SlotEntry[] = store.remaps.list(pairId).map((r) => ({
    mainBlock: r.mainBlock,
    spareBlock: r.spareBlock,
    createdAt: r.createdAt,
    reason: r.reason,
    state: r.state,
    lostSectors: r.lostSectors,
  }));
  for (const r of store.remaps.retiredWithTimes(pairId)) {
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

/**
 * The database's fingerprint. When the one its triggers keep equals
 * `expected` (the slots' table at the same sequence, the usual case), that is
 * it; otherwise SQLite computes it from every row, so a stored row can only
 * confirm agreement, never invent a disagreement or hide one that the rows show
 * unless the rows were changed with the triggers removed.
 */
export function databaseFingerprint(store: Store, pairId: number, expected?: string): string {
  const stored = store.remaps.storedPrintParts(pairId);
  if (stored && expected !== undefined) {
    const f = new Fingerprint();
    f.addParts(stored);
    if (f.value() === expected) return expected;
  }
  const f = new Fingerprint();
  f.addParts(store.remaps.rowPrintParts(pairId));
  return f.value();
}

/** The fingerprint of the table in force, read from its pages. */
export function stateFingerprint(state: MetaState): string {
  const f = new Fingerprint();
  state.forEachRaw((m, sp, t, lost, st, r) => f.addCodes(m, sp, t, lost, st, r));
  return f.value();
}

/**
 * The reconciliation of a pair just imported from `table` (read off the
 * serving thread): valid only if every copy held the table, the database is
 * at its sequence (the import wrote it from the table), and the slots still
 * carry the seal (read now, under the caller's lock). Otherwise undefined,
 * and the caller reconciles as usual.
 */
export function adoptedReconciliation(store: Store, pair: PairRecord, slots: SlotSet, table: AdoptedTable): Reconciliation | undefined {
  const h = table.header;
  const same = h.uuid === pair.uuid && h.blockSize === pair.blockSize && h.spareBytes === pair.spareBytes && h.mainBytes === pair.mainBytes;
  if (!same || !allCopiesCurrent(table) || store.pairs.metaSeq(pair.id) !== h.sequence || !stillSealed(slots.spare, table)) return undefined;
  const state = MetaState.fromPages(identityOf(pair), slots.layout, h.sequence, h.entryCount, table.pages);
  return {
    slots: table.reports,
    databaseSequence: h.sequence,
    source: 'slots',
    sourceSlot: table.sourceSlot,
    sequence: h.sequence,
    highestSeen: h.sequence,
    staleSlots: [],
    databaseAgrees: true,
    consistent: true,
    repaired: [],
    unwritten: [],
    state,
  };
}

export interface ReconcileOptions {
  /** Repair: rewrite the database and stale slots. Without it, only report. */
  write: boolean;
  /** A table already in force (a running daemon's): it is the source of truth. */
  inForce?: MetaState;
  log?: (line: string) => void;
}

/**
 * Adoption (docs/format.md, "Choosing a copy"): the copies whose headers
 * decode are tried by sequence number, highest first, each with every rule;
 * the first that passes is the slots' table. Only then is the database
 * consulted. The other copies are compared with the table in force by
 * decoded content (byte-equal pages cost a memcmp; any copy that differs is
 * read again with every rule before it is reported valid).
 */
export function reconcile(store: Store, pair: PairRecord, slots: SlotSet, opts: ReconcileOptions): Reconciliation {
  const log = opts.log ?? (() => undefined);
  const expect: SlotExpectation = { uuid: pair.uuid, mainBytes: pair.mainBytes, spareBytes: pair.spareBytes };
  const peeked = Array.from({ length: SLOT_COUNT }, (_, i) => slots.peekHeader(i));
  const dbSeq = store.pairs.metaSeq(pair.id);
  let highestSeen = dbSeq;
  for (const h of peeked) {
    // Torn copies count too (a sequence number never names two tables), but never past 2^53.
    if (h && h.uuid === pair.uuid && Number.isSafeInteger(h.sequence) && h.sequence < MAX_SEQUENCE) highestSeen = Math.max(highestSeen, h.sequence);
  }
  const reports: Array<SlotReport | undefined> = new Array<SlotReport | undefined>(SLOT_COUNT).fill(undefined);
  let newest: SlotReport | undefined;
  let newestState: MetaState | undefined;
  if (!opts.inForce) {
    const order = [...peeked.keys()].filter((i) => peeked[i]).sort((a, b) => (peeked[b]?.sequence ?? 0) - (peeked[a]?.sequence ?? 0) || a - b);
    for (const i of order) {
      const r = slots.read(i, expect, 'pages');
      reports[i] = r;
      if (r.valid && r.pages && r.header) {
        newest = r;
        newestState = MetaState.fromPages(identityOf(pair), slots.layout, r.header.sequence, r.header.entryCount, r.pages);
        break;
      }
    }
  }
  const foreignHeader = peeked.find((h) => h && h.uuid !== pair.uuid);
  if (!newest && foreignHeader && !peeked.some((h) => h?.uuid === pair.uuid)) {
    const foreign = [...peeked.keys()].map((i) => reports[i] ?? slots.read(i, { spareBytes: pair.spareBytes }, false)).find((r) => r.valid);
    if (foreign) {
      // Never overwrite another pair's metadata: the stored spare path points at the wrong device.
      throw new RemapfsError('open spare of pair', pair.name, `${pair.sparePath} holds the metadata of another pair (${foreign.header?.name}, uuid ${foreign.header?.uuid})`, 'wrong device? "remapfs discover" finds where the pair is now');
    }
  }
  const newestPrint = newestState ? (newest?.print ?? stateFingerprint(newestState)) : undefined;
  const dbPrint = databaseFingerprint(store, pair.id, newestState?.sequence === dbSeq ? newestPrint : undefined);
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
    const entries = databaseEntries(store, pair.id);
    const bad = tableProblem(entries, slots.layout, pair.mainBytes, pair.blockSize);
    if (bad) {
      const slotsHave = newestState ? `slot ${newest?.index} holds a valid table at sequence ${newestState.sequence}` : 'no slot holds a valid table';
      throw new RemapfsError('open metadata of pair', pair.name, `the database's remap table is invalid: ${bad}; ${slotsHave}`, 'restore the database, or delete the pair from it and "remapfs import" it from its spare');
    }
    const bump = newest !== undefined || peeked.some((h) => h?.uuid === pair.uuid);
    const sequence = bump ? highestSeen + 1 : dbSeq;
    if (sequence > MAX_SEQUENCE) throw new RemapfsError('open metadata of pair', pair.name, 'the sequence number would reach 2^53', 'the metadata was tampered with; rebuild the pair');
    state = new MetaState(identity, slots.layout, sequence, entries);
    source = 'database';
  }
  const statePrint = source === 'slots' && newestPrint ? newestPrint : stateFingerprint(state);
  const databaseAgrees = dbSeq === state.sequence && dbPrint === statePrint;
  const final: SlotReport[] = [];
  for (let i = 0; i < SLOT_COUNT; i++) {
    const r = reports[i];
    if (r && source === 'slots' && r === newest) final.push({ ...r, matches: true });
    else if (r && !r.valid) final.push({ ...r, matches: false });
    else final.push(slots.compare(i, state, expect));
  }
  const staleSlots = final.filter((r) => !r.valid || !r.matches).map((r) => r.index);
  // Copies that hold the table but not byte for byte (non-zero reserved bytes) are rewritten quietly when
  // writing, so that an update (which rewrites one page CRC table sector) cannot invalidate them.
  const unclean = final.filter((r) => r.valid && r.matches && r.canonical === false).map((r) => r.index);
  const repaired: string[] = [];
  let unwritten: number[] = [];
  if (opts.write) {
    if (!databaseAgrees) {
      const all = state.entries;
      const remaps = all.filter((e) => e.state !== 'retired').map(recordOf);
      const retired = all.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
      store.transaction(() => store.remaps.replaceTable(pair.id, remaps, retired, state.sequence));
      const what = source === 'slots' ? `slot ${newest?.index} (sequence ${state.sequence})` : `the ${source} table (sequence ${state.sequence})`;
      repaired.push(`database restored from ${what}`);
    }
    const rewrite = [...staleSlots, ...unclean].sort((a, b) => a - b);
    if (rewrite.length) {
      const failed = slots.writeAll(state, rewrite);
      unwritten = failed;
      for (const i of rewrite) {
        const r = final[i];
        const why = !r?.valid ? `invalid: ${r?.reason}` : r.matches ? 'reserved bytes were not zero' : r.sequence !== state.sequence ? `stale (sequence ${r.sequence})` : `different table at sequence ${r.sequence}`;
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
    slots: final.map(({ pages: _pages, print: _print, ...r }) => r),
    databaseSequence: dbSeq,
    source,
    ...(sourceSlot !== undefined ? { sourceSlot } : {}),
    sequence: state.sequence,
    highestSeen: Math.max(highestSeen, state.sequence),
    staleSlots,
    databaseAgrees,
    consistent: databaseAgrees && staleSlots.length === 0,
    repaired,
    unwritten,
    state,
  };
}
