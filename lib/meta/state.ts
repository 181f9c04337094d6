/**
 * MetaState: the remap table as it is laid out in a metadata slot. Entries
 * keep their position for life (an update rewrites the entry in place, a new
 * entry is appended), so a single-entry change touches one 4096-byte page, the
 * 512-byte table sector holding that page's CRC, and the header sector.
 *
 * Invariants: pageCrcs[p] is the CRC32 of page p as encodePage produces it; at
 * most one entry per main block (remapped or pending) and one per retired
 * spare block.
 */
import { SLOT_COUNT, SLOT_ENTRIES_PER_PAGE, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, SpareLayout } from '../remap/layout';
import { TypedHash } from '../remap/typed-hash';
import { crc32, encodeHeaderFields, encodePage, headerCrc, HEADER_CRC_OFFSET, pagesFor, SlotEntry, SlotHeader } from './codec';

export interface PairIdentity {
  uuid: string;
  name: string;
  blockSize: number;
  mainBytes: number;
  spareBytes: number;
}

export class MetaState {
  readonly identity: PairIdentity;
  readonly layout: SpareLayout;
  sequence: number;
  readonly entries: SlotEntry[] = [];
  private readonly posByMain: TypedHash;
  private readonly posByRetired = new TypedHash();
  private pageCrcs: Buffer;
  private readonly pageBuf = Buffer.alloc(SLOT_PAGE_BYTES);

  constructor(identity: PairIdentity, layout: SpareLayout, sequence: number, entries: readonly SlotEntry[]) {
    this.identity = identity;
    this.layout = layout;
    this.sequence = sequence;
    this.posByMain = new TypedHash(entries.length);
    this.pageCrcs = Buffer.alloc(4 * Math.max(16, pagesFor(entries.length)));
    for (const e of entries) this.place(e);
    for (let p = 0; p < this.pageCount; p++) this.recomputePage(p);
  }

  get pageCount(): number {
    return pagesFor(this.entries.length);
  }

  /** Adds or replaces the entry for its main block (or retired spare block); returns the page it lives on. */
  upsert(e: SlotEntry): number {
    const pos = this.place(e);
    const page = Math.floor(pos / SLOT_ENTRIES_PER_PAGE);
    this.recomputePage(page);
    return page;
  }

  page(p: number): Buffer {
    encodePage(this.entries, p, this.pageBuf);
    return this.pageBuf;
  }

  /** The page CRC table bytes for the pages in use. */
  table(): Buffer {
    return this.pageCrcs.subarray(0, 4 * this.pageCount);
  }

  header(slotIndex: number, timestamp: number): Buffer {
    const h: SlotHeader = {
      uuid: this.identity.uuid,
      name: this.identity.name,
      sequence: this.sequence,
      timestamp,
      blockSize: this.identity.blockSize,
      slotIndex,
      slotCount: SLOT_COUNT,
      slotBlocks: this.layout.slotBlocks,
      mainBytes: this.identity.mainBytes,
      spareBytes: this.identity.spareBytes,
      entryCapacity: this.layout.slotEntryCapacity,
      entryCount: this.entries.length,
      pageCount: this.pageCount,
    };
    const buf = Buffer.alloc(SLOT_HEADER_BYTES);
    encodeHeaderFields(h, buf);
    buf.writeUInt32LE(headerCrc(buf, this.table()), HEADER_CRC_OFFSET);
    return buf;
  }

  private place(e: SlotEntry): number {
    const byKey = e.state === 'retired' ? this.posByRetired : this.posByMain;
    const key = e.state === 'retired' ? e.spareBlock : e.mainBlock;
    let pos = byKey.get(key);
    if (pos < 0) {
      if (this.entries.length >= this.layout.slotEntryCapacity) throw new Error(`metadata slots are full (${this.layout.slotEntryCapacity} entries)`);
      pos = this.entries.length;
      this.entries.push(e);
      byKey.set(key, pos);
    } else {
      this.entries[pos] = e;
    }
    return pos;
  }

  private recomputePage(p: number): void {
    if (4 * (p + 1) > this.pageCrcs.length) {
      const grown = Buffer.alloc(Math.max(4 * (p + 1), this.pageCrcs.length * 2));
      this.pageCrcs.copy(grown);
      this.pageCrcs = grown;
    }
    this.pageCrcs.writeUInt32LE(crc32(this.page(p)), 4 * p);
  }
}
