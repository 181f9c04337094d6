/**
 * MetaJournal: the RemapJournal that persists a change in both stores before
 * it takes effect. Order: a new sequence number; one SQLite transaction (the
 * entry and pairs.meta_seq); then the five slots, one after another, each
 * flushed. A crash between the two leaves the database ahead; the next open
 * rewrites the slots from it (reconcile.ts). The change counts as persisted
 * once SQLite has committed it: from then on nothing throws, so the caller
 * applies it to the index (a throw there would leave the index behind the
 * database, and the next remap would reuse a spare block the database has
 * given away). Room in the slots is checked before the transaction.
 *
 * A slot whose write failed misses that change, so it no longer holds a valid
 * table (its header's CRC covers the page CRCs of the whole table) and later
 * updates would not mend it: it is left alone (`stale`) until `remapfs
 * repair` or the next open rewrites it. When no slot holds the table, the
 * database alone does, and the log says so.
 */
import { RemapfsError } from '../errors.js';
import { SLOT_COUNT } from '../format/layout.js';
import type { RemapJournal } from '../remap/remap-device.js';
import type { PairRecord, RemapRecord, Store } from '../store/db.js';
import type { SlotEntry } from '../format/slot-codec.js';
import type { SlotSet } from './slots.js';
import type { MetaState } from './state.js';
import { MAX_SEQUENCE } from '../format/validate.js';

export class MetaJournal implements RemapJournal {
  /** Slots that missed a change (see above): not written again until reconcile rewrites them. */
  private readonly stale = new Set<number>();

  constructor(
    private readonly store: Store,
    private readonly pair: PairRecord,
    readonly state: MetaState,
    readonly slots: SlotSet,
    private readonly log: (line: string) => void = () => undefined,
    /** The highest sequence number seen at open (Reconciliation.highestSeen): a torn copy may name one above the table's. */
    private readonly sequenceFloor = 0,
  ) {}

  commitRemap(r: RemapRecord): void {
    const entry: SlotEntry = { mainBlock: r.mainBlock, spareBlock: r.spareBlock, createdAt: r.createdAt, reason: r.reason, state: r.state, lostSectors: r.lostSectors };
    this.commit(entry, () => {
      this.store.remaps.put(this.pair.id, r);
      this.store.events.add(this.pair.id, r.createdAt, r.state === 'pending' ? 'pending' : r.reason === 'label' ? 'label' : 'remap', r.mainBlock, r.spareBlock, r.reason);
    });
  }

  commitRetired(spareBlock: number): void {
    const createdAt = Date.now();
    const entry: SlotEntry = { mainBlock: -1, spareBlock, createdAt, reason: 'none', state: 'retired', lostSectors: 0 };
    this.commit(entry, () => {
      this.store.remaps.putRetired(this.pair.id, spareBlock, createdAt);
      this.store.events.add(this.pair.id, createdAt, 'retired', null, spareBlock, null);
    });
  }

  /** After a repair of these slots (reconcile with write): the slots it could not rewrite are the stale ones now. */
  repaired(unwritten: readonly number[]): void {
    this.stale.clear();
    for (const i of unwritten) this.stale.add(i);
  }

  noteBadSectors(sectors: readonly number[], source: string): void {
    if (sectors.length) this.store.transaction(() => this.store.badSectors.add(this.pair.id, sectors, source, Date.now()));
  }

  private commit(entry: SlotEntry, writeDatabase: () => void): void {
    // A sequence number never names two tables: not even one a torn copy claimed.
    const seq = Math.max(this.state.sequence, this.sequenceFloor) + 1;
    if (seq > MAX_SEQUENCE) throw new RemapfsError('persist metadata', this.pair.name, 'the sequence number would reach 2^53', 'the metadata was tampered with; rebuild the pair');
    if (!this.state.fits(entry)) {
      throw new RemapfsError('persist metadata', this.pair.name, `the metadata slots are full (${this.state.layout.slotEntryCapacity} entries)`, 'the spare is too small for this many remapped, pending and retired blocks: evacuate the pair to a new disk');
    }
    this.store.transaction(() => {
      writeDatabase();
      this.store.pairs.setMetaSeq(this.pair.id, seq);
    });
    // Committed: nothing below throws for a disk error.
    this.state.sequence = seq;
    const page = this.state.upsert(entry);
    const current = new Set(Array.from({ length: SLOT_COUNT }, (_, i) => i).filter((i) => !this.stale.has(i)));
    const failed = current.size ? this.slots.writeUpdate(this.state, [page], current) : [];
    if (!failed.length) return;
    for (const i of failed) this.stale.add(i);
    const holding = SLOT_COUNT - this.stale.size;
    this.log(
      `remapfs: ${this.pair.name}: metadata slot(s) ${failed.join(', ')} could not be written; ${holding ? `${holding} of ${SLOT_COUNT} hold the table` : 'no slot holds the table now, only the database does'}; "remapfs repair" rewrites them`,
    );
  }
}
