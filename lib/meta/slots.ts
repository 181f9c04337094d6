/**
 * Reading and writing the five metadata slots on a spare device.
 *
 * Write order, one slot at a time: entry pages, then the page CRC table
 * sectors, then the header sector, then flush; only then the next slot. While
 * a slot is being written its header CRC no longer matches (or its pages no
 * longer match their CRCs), so a crash tears at most that one slot, and the
 * other four still hold a complete copy, old or new.
 */
import { BlockDevice, SECTOR_BYTES } from '../block/device';
import { RemapfsError } from '../errors';
import { slotHeaderRegionBytes, SLOT_COUNT, SLOT_ENTRIES_PER_PAGE, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, SpareLayout } from '../remap/layout';
import { checkHeaderCrc, crc32, decodeEntry, decodeHeaderFields, decodePage, hex32, SlotEntry, SlotHeader } from './codec';
import { MetaState } from './state';

export interface SlotReport {
  index: number;
  byteOffset: number;
  byteLength: number;
  valid: boolean;
  sequence?: number;
  reason?: string;
  header?: SlotHeader;
  entries?: SlotEntry[];
  /** The raw entry pages (whole pages), when read with mode 'pages'. */
  pages?: Buffer;
  /** Identifies the table's content: entry count and the CRC32 of the page CRC table. */
  tableDigest?: string;
}

export function tableDigest(entryCount: number, pageCrcTable: Buffer): string {
  return `${entryCount}:${crc32(pageCrcTable).toString(16)}`;
}

const READ_CHUNK_BYTES = 1024 * 1024;

export class SlotSet {
  readonly spare: BlockDevice;
  readonly layout: SpareLayout;
  /** Byte offset of the first entry page inside a slot. */
  readonly pagesOffset: number;
  /** Bytes written by the last write call, for measurements. */
  lastWriteBytes = 0;

  constructor(spare: BlockDevice, layout: SpareLayout) {
    this.spare = spare;
    this.layout = layout;
    this.pagesOffset = slotHeaderRegionBytes(layout.slotEntryCapacity);
  }

  slotOffset(i: number): number {
    const slot = this.layout.slots[i];
    if (!slot) throw new RangeError(`no slot ${i}`);
    return slot.startBlock * this.layout.blockSize;
  }

  slotLength(): number {
    return this.layout.slotBlocks * this.layout.blockSize;
  }

  /** The sequence number in slot i's header, if the header decodes (nothing else is checked). */
  peekSequence(i: number): number | undefined {
    try {
      const head = Buffer.alloc(SLOT_HEADER_BYTES);
      this.spare.read(head, this.slotOffset(i));
      const decoded = decodeHeaderFields(head);
      return decoded.ok ? decoded.header.sequence : undefined;
    } catch {
      return undefined;
    }
  }

  readAll(expect?: { uuid: string }, keepEntries: boolean | 'pages' | 'crc' = true): SlotReport[] {
    const out: SlotReport[] = [];
    for (let i = 0; i < SLOT_COUNT; i++) out.push(this.read(i, expect, keepEntries));
    return out;
  }

  /**
   * Reads and fully checks slot i (every page CRC and every entry); never
   * throws for bad content or read errors. Without keepEntries the entries are
   * checked but not returned (cheaper for copies compared by digest); with
   * 'pages' the raw entry pages are returned instead of objects; with 'crc'
   * only the CRCs are checked (for copies whose digest is then compared with
   * that of a fully checked one: equal digests mean equal entries).
   */
  read(i: number, expect?: { uuid: string }, keepEntries: boolean | 'pages' | 'crc' = true): SlotReport {
    const byteOffset = this.slotOffset(i);
    const base = { index: i, byteOffset, byteLength: this.slotLength() };
    const invalid = (reason: string, header?: SlotHeader): SlotReport => ({ ...base, valid: false, reason, ...(header ? { header, sequence: header.sequence } : {}) });
    try {
      const head = Buffer.alloc(SLOT_HEADER_BYTES);
      this.spare.read(head, byteOffset);
      const decoded = decodeHeaderFields(head);
      if (!decoded.ok) return invalid(decoded.reason);
      const h = decoded.header;
      const geometry = this.checkGeometry(h, i);
      if (geometry) return invalid(geometry, h);
      const table = Buffer.alloc(4 * h.pageCount);
      if (table.length) this.spare.read(table, byteOffset + SLOT_HEADER_BYTES);
      const crcProblem = checkHeaderCrc(head, table);
      if (crcProblem) return invalid(crcProblem, h);
      if (expect && h.uuid !== expect.uuid) return invalid(`belongs to another pair (uuid ${h.uuid})`, h);
      const entries: SlotEntry[] = [];
      const pages = keepEntries === 'pages' ? Buffer.alloc(Math.max(1, h.pageCount) * SLOT_PAGE_BYTES) : undefined;
      // Pages to keep are read straight into their place; others through one reused chunk.
      const pagesPerChunk = Math.min(READ_CHUNK_BYTES, Math.max(SLOT_PAGE_BYTES, h.pageCount * SLOT_PAGE_BYTES)) / SLOT_PAGE_BYTES;
      const chunk = pages ? undefined : Buffer.alloc(pagesPerChunk * SLOT_PAGE_BYTES);
      for (let first = 0; first < h.pageCount; first += pagesPerChunk) {
        const n = Math.min(pagesPerChunk, h.pageCount - first);
        const into = pages ? pages.subarray(first * SLOT_PAGE_BYTES, (first + n) * SLOT_PAGE_BYTES) : (chunk as Buffer).subarray(0, n * SLOT_PAGE_BYTES);
        this.spare.read(into, byteOffset + this.pagesOffset + first * SLOT_PAGE_BYTES);
        for (let k = 0; k < n; k++) {
          const p = first + k;
          const page = into.subarray(k * SLOT_PAGE_BYTES, (k + 1) * SLOT_PAGE_BYTES);
          const stored = table.readUInt32LE(4 * p);
          const actual = crc32(page);
          if (stored !== actual) return invalid(`page ${p} CRC mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`, h);
          const count = Math.min(SLOT_ENTRIES_PER_PAGE, h.entryCount - p * SLOT_ENTRIES_PER_PAGE);
          const bad = keepEntries === true ? decodePage(page, count, entries) : keepEntries === 'crc' ? undefined : checkPage(page, count, p * SLOT_ENTRIES_PER_PAGE, h, this.layout.spareBlocks);
          if (bad) return invalid(bad, h);
        }
      }
      if (keepEntries === true) {
        const semantic = this.checkEntries(h, entries);
        if (semantic) return invalid(semantic, h);
      }
      return {
        ...base,
        valid: true,
        sequence: h.sequence,
        header: h,
        tableDigest: tableDigest(h.entryCount, table),
        ...(keepEntries === true ? { entries } : {}),
        ...(pages ? { pages } : {}),
      };
    } catch (err) {
      return invalid(`read error: ${err instanceof RemapfsError ? err.causeText : String(err)}`);
    }
  }

  /** Writes every slot in full from `state`, one after another; returns the indexes that failed. */
  writeAll(state: MetaState, only?: readonly number[]): number[] {
    const failed: number[] = [];
    this.lastWriteBytes = 0;
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (only && !only.includes(i)) continue;
      try {
        this.writeFull(i, state);
      } catch {
        failed.push(i);
      }
    }
    return failed;
  }

  /** Writes the changed pages of every slot, one slot after another; returns the indexes that failed. */
  writeUpdate(state: MetaState, pages: readonly number[]): number[] {
    const failed: number[] = [];
    this.lastWriteBytes = 0;
    const timestamp = Date.now();
    for (let i = 0; i < SLOT_COUNT; i++) {
      try {
        const off = this.slotOffset(i);
        for (const p of pages) this.put(state.page(p), off + this.pagesOffset + p * SLOT_PAGE_BYTES);
        const sectors = new Set(pages.map((p) => Math.floor((SLOT_HEADER_BYTES + 4 * p) / SECTOR_BYTES)));
        for (const s of sectors) this.put(this.tableSector(state, s), off + s * SECTOR_BYTES);
        this.put(state.header(i, timestamp), off);
        this.spare.flush();
      } catch {
        failed.push(i);
      }
    }
    return failed;
  }

  private writeFull(i: number, state: MetaState): void {
    const off = this.slotOffset(i);
    for (let p = 0; p < state.pageCount; p++) this.put(state.page(p), off + this.pagesOffset + p * SLOT_PAGE_BYTES);
    const tableEnd = SLOT_HEADER_BYTES + 4 * state.pageCount;
    for (let s = 1; s * SECTOR_BYTES < tableEnd; s++) this.put(this.tableSector(state, s), off + s * SECTOR_BYTES);
    this.put(state.header(i, Date.now()), off);
    this.spare.flush();
  }

  /** Sector s (>= 1) of the header region: the slice of the page CRC table it holds. */
  private tableSector(state: MetaState, s: number): Buffer {
    const sector = Buffer.alloc(SECTOR_BYTES);
    const table = state.table();
    const from = s * SECTOR_BYTES - SLOT_HEADER_BYTES;
    table.copy(sector, 0, Math.min(from, table.length), Math.min(from + SECTOR_BYTES, table.length));
    return sector;
  }

  private put(buf: Buffer, byteOffset: number): void {
    this.spare.write(buf, byteOffset);
    this.lastWriteBytes += buf.length;
  }

  private checkGeometry(h: SlotHeader, i: number): string | undefined {
    const l = this.layout;
    if (h.slotIndex !== i) return `header says slot ${h.slotIndex}, found at slot ${i}`;
    if (h.blockSize !== l.blockSize) return `block size ${h.blockSize} does not match the pair (${l.blockSize})`;
    if (h.slotBlocks !== l.slotBlocks || h.slotCount !== SLOT_COUNT) return 'slot geometry does not match the spare';
    if (h.entryCapacity !== l.slotEntryCapacity) return 'entry capacity does not match the spare';
    return undefined;
  }

  private checkEntries(h: SlotHeader, entries: readonly SlotEntry[]): string | undefined {
    for (let k = 0; k < entries.length; k++) {
      const bad = entryProblem(entries[k] as SlotEntry, k, h, this.layout.spareBlocks);
      if (bad) return bad;
    }
    return undefined;
  }
}

function entryProblem(e: SlotEntry, k: number, h: SlotHeader, spareBlocks: number): string | undefined {
  const mainBlocks = Math.floor(h.mainBytes / h.blockSize);
  if (e.state !== 'retired' && (e.mainBlock < 0 || e.mainBlock >= mainBlocks)) return `entry ${k}: main block ${e.mainBlock} outside the device`;
  if (e.state !== 'pending' && (e.spareBlock < 0 || e.spareBlock >= spareBlocks)) return `entry ${k}: spare block ${e.spareBlock} outside the spare`;
  return undefined;
}

/** Checks a page's entries like decodePage and checkEntries, without keeping them. */
function checkPage(page: Buffer, count: number, firstIndex: number, h: SlotHeader, spareBlocks: number): string | undefined {
  for (let i = 0; i < count; i++) {
    const e = decodeEntry(page, i * SLOT_ENTRY_BYTES);
    if (!e) return `entry ${firstIndex + i} is malformed`;
    const bad = entryProblem(e, firstIndex + i, h, spareBlocks);
    if (bad) return bad;
  }
  return undefined;
}
