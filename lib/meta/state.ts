/**
 * MetaState: the remap table in force, held in memory exactly as it lies in
 * a slot's entry pages (32 bytes per entry, 128 per 4096-byte page), so a
 * million entries take 32 MB and no per-entry objects. Entries keep their
 * position for life (an update rewrites the entry in place, a new entry is
 * appended), so a single-entry change touches one page, the 512-byte table
 * sector holding that page's CRC, and the header sector.
 *
 * Invariants: pageCrcs[p] is the CRC32 of page p; bytes after the last entry
 * are zero; at most one entry per main block (remapped or pending) and one per
 * retired spare block.
 */
import { SLOT_COUNT, SLOT_ENTRIES_PER_PAGE, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, type SpareLayout } from '../format/layout.js';
import { TypedHash } from '../remap/typed-hash.js';
import { crc32, decodeEntry, encodeEntry, encodeHeaderFields, headerCrc, HEADER_CRC_OFFSET, NO_BLOCK, pagesFor, REASONS, type SlotEntry, type SlotHeader } from '../format/slot-codec.js';

export interface PairIdentity {
  uuid: string;
  name: string;
  blockSize: number;
  mainBytes: number;
  spareBytes: number;
}

const STATE_PENDING = 2;
const STATE_RETIRED = 3;
const REASON_LABEL = REASONS.indexOf('label');

export class MetaState {
  readonly identity: PairIdentity;
  readonly layout: SpareLayout;
  sequence: number;
  private count = 0;
  /** The entry pages, page-aligned; grows by doubling. */
  private pages: Buffer;
  /** Position by main block and by retired spare block; built on the first change (16 MB per million entries: TypedHash). */
  private posByMain: TypedHash | undefined;
  private posByRetired: TypedHash | undefined;
  private pageCrcs: Buffer;

  constructor(identity: PairIdentity, layout: SpareLayout, sequence: number, entries: readonly SlotEntry[]) {
    this.identity = identity;
    this.layout = layout;
    this.sequence = sequence;
    this.pages = Buffer.alloc(SLOT_PAGE_BYTES * Math.max(1, pagesFor(entries.length)));
    this.pageCrcs = Buffer.alloc(4 * Math.max(16, pagesFor(entries.length)));
    for (const e of entries) this.place(e);
    for (let p = 0; p < this.pageCount; p++) this.recomputePage(p);
  }

  /**
   * Adopts entry pages read from a valid slot (`pages` holds `count` entries,
   * zero after them, whole pages), without decoding them into objects.
   */
  static fromPages(identity: PairIdentity, layout: SpareLayout, sequence: number, count: number, pages: Buffer): MetaState {
    const s = new MetaState(identity, layout, sequence, []);
    s.pages = pages;
    s.count = count;
    s.posByMain = undefined;
    s.posByRetired = undefined;
    s.pageCrcs = Buffer.alloc(4 * Math.max(16, pagesFor(count)));
    for (let p = 0; p < s.pageCount; p++) s.recomputePage(p);
    return s;
  }

  /** The entry pages in use, over an ArrayBuffer of their own (to be transferred to another thread). */
  pagesForTransfer(): Buffer {
    const used = this.pages.subarray(0, SLOT_PAGE_BYTES * Math.max(1, this.pageCount));
    if (used.byteOffset === 0 && used.byteLength === used.buffer.byteLength) return used;
    const own = Buffer.alloc(used.length);
    used.copy(own);
    return own;
  }

  get entryCount(): number {
    return this.count;
  }

  get pageCount(): number {
    return pagesFor(this.count);
  }

  /** All entries as objects (allocates: for repairs, imports and tests, not for the I/O path). */
  get entries(): SlotEntry[] {
    const out: SlotEntry[] = [];
    for (let i = 0; i < this.count; i++) out.push(decodeEntry(this.pages, i * SLOT_ENTRY_BYTES) as SlotEntry);
    return out;
  }

  /** How many entries are remapped (the label block apart), the label block, pending and retired: two bytes read per entry. */
  tally(): { remapped: number; label: number; pending: number; retired: number } {
    const t = { remapped: 0, label: 0, pending: 0, retired: 0 };
    const b = this.pages;
    for (let off = 0; off < this.count * SLOT_ENTRY_BYTES; off += SLOT_ENTRY_BYTES) {
      const state = b[off + 25];
      if (state === STATE_RETIRED) t.retired++;
      else if (state === STATE_PENDING) t.pending++;
      else if (b[off + 24] === REASON_LABEL) t.label++;
      else t.remapped++;
    }
    return t;
  }

  /** The entries at positions [from, to) as objects (an import writes them a chunk at a time). */
  entriesIn(from: number, to: number): SlotEntry[] {
    const out: SlotEntry[] = [];
    for (let i = from; i < Math.min(to, this.count); i++) out.push(decodeEntry(this.pages, i * SLOT_ENTRY_BYTES) as SlotEntry);
    return out;
  }

  /** The entry at position `pos`. */
  entryAt(pos: number): SlotEntry {
    if (pos < 0 || pos >= this.count) throw new RangeError(`no entry at position ${pos} (${this.count} entries)`);
    return decodeEntry(this.pages, pos * SLOT_ENTRY_BYTES) as SlotEntry;
  }

  /**
   * Positions of the remapped and pending entries, oldest first (by creation
   * time, then main block): the order in which an import writes their history
   * events. Sorting a million costs about a second, so a hot-plug import has
   * the discovery worker do it (locate.ts, readAdoptedTable).
   */
  historyOrder(): Float64Array {
    const b = this.pages;
    let n = 0;
    let sorted = true;
    let lastTime = -Infinity;
    let lastMain = -Infinity;
    const pos = new Float64Array(this.count);
    for (let i = 0; i < this.count; i++) {
      const off = i * SLOT_ENTRY_BYTES;
      if (b.readUInt8(off + 25) === STATE_RETIRED) continue;
      const t = readU64(b, off + 16);
      const m = readU64(b, off);
      if (t < lastTime || (t === lastTime && m < lastMain)) sorted = false;
      lastTime = t;
      lastMain = m;
      pos[n++] = i;
    }
    const order = pos.subarray(0, n);
    if (!sorted) {
      const key = (p: number): [number, number] => [readU64(b, p * SLOT_ENTRY_BYTES + 16), readU64(b, p * SLOT_ENTRY_BYTES)];
      const times = new Float64Array(this.count);
      const mains = new Float64Array(this.count);
      for (const p of order) [times[p], mains[p]] = key(p);
      order.sort((x, y) => (times[x] as number) - (times[y] as number) || (mains[x] as number) - (mains[y] as number));
    }
    // Its own ArrayBuffer, the exact length: transferred from the worker as it is.
    return order.slice();
  }

  /** Visits the entries at positions [from, to) (all by default) without allocating: codes as in docs/format.md. */
  forEachRaw(fn: (mainBlock: number, spareBlock: number, createdAt: number, lostSectors: number, stateCode: number, reasonCode: number) => void, from = 0, to = this.count): void {
    const b = this.pages;
    for (let i = from; i < Math.min(to, this.count); i++) {
      const off = i * SLOT_ENTRY_BYTES;
      fn(readU64(b, off), readU64(b, off + 8), readU64(b, off + 16), b.readUInt16LE(off + 26), b.readUInt8(off + 25), b.readUInt8(off + 24));
    }
  }

  /** Whether upsert(e) has room: its key is already here, or the slots' capacity is not reached. */
  fits(e: SlotEntry): boolean {
    if (this.count < this.layout.slotEntryCapacity) return true;
    const { byMain, byRetired } = this.positions();
    return (e.state === 'retired' ? byRetired.get(e.spareBlock) : byMain.get(e.mainBlock)) >= 0;
  }

  /** Adds or replaces the entry for its main block (or retired spare block); returns the page it lives on. */
  upsert(e: SlotEntry): number {
    const pos = this.place(e);
    const page = Math.floor(pos / SLOT_ENTRIES_PER_PAGE);
    this.recomputePage(page);
    return page;
  }

  page(p: number): Buffer {
    return this.pages.subarray(p * SLOT_PAGE_BYTES, (p + 1) * SLOT_PAGE_BYTES);
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
      entryCount: this.count,
      pageCount: this.pageCount,
    };
    const buf = Buffer.alloc(SLOT_HEADER_BYTES);
    encodeHeaderFields(h, buf);
    buf.writeUInt32LE(headerCrc(buf, this.table()), HEADER_CRC_OFFSET);
    return buf;
  }

  private positions(): { byMain: TypedHash; byRetired: TypedHash } {
    if (!this.posByMain || !this.posByRetired) {
      this.posByMain = new TypedHash(this.count);
      this.posByRetired = new TypedHash();
      for (let i = 0; i < this.count; i++) {
        const off = i * SLOT_ENTRY_BYTES;
        if (this.pages.readUInt8(off + 25) === STATE_RETIRED) this.posByRetired.set(readU64(this.pages, off + 8), i);
        else this.posByMain.set(readU64(this.pages, off), i);
      }
    }
    return { byMain: this.posByMain, byRetired: this.posByRetired };
  }

  private place(e: SlotEntry): number {
    const { byMain, byRetired } = this.positions();
    const byKey = e.state === 'retired' ? byRetired : byMain;
    const key = e.state === 'retired' ? e.spareBlock : e.mainBlock;
    let pos = byKey.get(key);
    if (pos < 0) {
      if (this.count >= this.layout.slotEntryCapacity) throw new Error(`metadata slots are full (${this.layout.slotEntryCapacity} entries)`);
      pos = this.count++;
      if ((pos + 1) * SLOT_ENTRY_BYTES > this.pages.length) {
        const grown = Buffer.alloc(this.pages.length * 2);
        this.pages.copy(grown);
        this.pages = grown;
      }
      byKey.set(key, pos);
    }
    encodeEntry(e, this.pages, pos * SLOT_ENTRY_BYTES);
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

function readU64(b: Buffer, off: number): number {
  const lo = b.readUInt32LE(off);
  const hi = b.readUInt32LE(off + 4);
  return lo === 0xffffffff && hi === 0xffffffff ? NO_BLOCK : hi * 0x100000000 + lo;
}
