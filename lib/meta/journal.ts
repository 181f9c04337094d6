/**
 * MetaJournal: the RemapJournal that persists a change in both stores before
 * it takes effect. Order: a new sequence number; one SQLite transaction (the
 * entry and pairs.meta_seq); then the five slots, one after another, each
 * flushed. A crash between the two leaves the database ahead; the next open
 * rewrites the slots from it (reconcile.ts). The change counts as persisted
 * when SQLite and at least one slot hold it.
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
  constructor(
    private readonly store: Store,
    private readonly pair: PairRecord,
    readonly state: MetaState,
    readonly slots: SlotSet,
    private readonly log: (line: string) => void = () => undefined,
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

  noteBadSectors(sectors: readonly number[], source: string): void {
    if (sectors.length) this.store.transaction(() => this.store.badSectors.add(this.pair.id, sectors, source, Date.now()));
  }

  private commit(entry: SlotEntry, writeDatabase: () => void): void {
    const seq = this.state.sequence + 1;
    if (seq > MAX_SEQUENCE) throw new RemapfsError('persist metadata', this.pair.name, 'the sequence number would reach 2^53', 'the metadata was tampered with; rebuild the pair');
    this.store.transaction(() => {
      writeDatabase();
      this.store.pairs.setMetaSeq(this.pair.id, seq);
    });
    this.state.sequence = seq;
    const page = this.state.upsert(entry);
    const failed = this.slots.writeUpdate(this.state, [page]);
    if (failed.length === SLOT_COUNT) {
      throw new RemapfsError('persist metadata', this.pair.name, 'no metadata slot could be written', 'the spare device may be failing; the database holds the change');
    }
    if (failed.length) this.log(`remapfs: ${this.pair.name}: metadata slot(s) ${failed.join(', ')} could not be written; "remapfs repair" rewrites them`);
  }
}
