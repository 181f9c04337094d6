/**
 * Reading and writing the five metadata slots on a spare device.
 *
 * Write order, one slot at a time: entry pages, then the page CRC table
 * sectors, then the header sector, then flush; only then the next slot. While
 * a slot is being written its header CRC no longer matches (or its pages no
 * longer match their CRCs), so a crash tears at most that one slot, and the
 * other four still hold a complete copy, old or new.
 *
 * Reading: read() applies every rule of format/validate.ts (a copy is valid only
 * then); compare() judges a copy against the table in force by decoded
 * content (reserved bytes do not count) and falls back to read() for any
 * copy that differs. Nothing is allocated from a header's numbers before
 * headerGeometryProblem has bounded them by the spare's geometry.
 *
 * Errors: a disk error reading a copy makes that copy invalid ("read error"),
 * and one writing a copy makes it a failed slot; the decoders return typed
 * results for bad bytes; any other exception is a bug and propagates.
 */
import type { BlockDevice } from '../block/device.js';
import { isDiskError } from '../block/disk-error.js';
import { RemapfsError } from '../errors.js';
import { SECTOR_BYTES, SLOT_COUNT, SLOT_ENTRIES_PER_PAGE, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, slotHeaderRegionBytes, type SpareLayout } from '../format/layout.js';
import { checkHeaderCrc, crc32, decodeHeaderFields, decodePage, hex32, type SlotEntry, type SlotHeader } from '../format/slot-codec.js';
import { Fingerprint } from '../format/fingerprint.js';
import { type HeaderExpectation, headerGeometryProblem, headerProblem, TableChecker } from '../format/validate.js';
import type { MetaState } from './state.js';

export interface SlotReport {
  index: number;
  byteOffset: number;
  byteLength: number;
  /** Passed every rule of format/validate.ts (header, CRCs, every entry). */
  valid: boolean;
  sequence?: number;
  reason?: string;
  header?: SlotHeader;
  entries?: SlotEntry[];
  /** The raw entry pages (whole pages, reserved bytes zeroed), when read with mode 'pages'. */
  pages?: Buffer;
  /** With the pages: the table's fingerprint (format/fingerprint.ts), computed while the entries were checked. */
  print?: string;
  /** Set by compare(): the copy holds the given table (same sequence, same decoded entries). */
  matches?: boolean;
  /** The copy's entry pages are byte for byte what remapfs writes (false: non-zero reserved bytes). */
  canonical?: boolean;
}

/** What a copy is checked against: the pair's UUID and sizes, when known. */
export interface SlotExpectation {
  uuid?: string;
  mainBytes?: number;
  /** The spare size the layout comes from; the device's size by default. */
  spareBytes?: number;
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

  /** Slot i's fixed header if it decodes (magic, version, counts; no CRC, nothing else checked). */
  peekHeader(i: number): SlotHeader | undefined {
    try {
      const head = Buffer.alloc(SLOT_HEADER_BYTES);
      if (this.slotOffset(i) + SLOT_HEADER_BYTES > this.spare.sizeBytes) return undefined;
      this.spare.read(head, this.slotOffset(i));
      const decoded = decodeHeaderFields(head);
      return decoded.ok ? decoded.header : undefined;
    } catch (err) {
      if (!isDiskError(err)) throw err;
      return undefined;
    }
  }

  /** The sequence number in slot i's header, if the header decodes (nothing else is checked). */
  peekSequence(i: number): number | undefined {
    return this.peekHeader(i)?.sequence;
  }

  readAll(expect?: SlotExpectation, keepEntries: boolean | 'pages' = true): SlotReport[] {
    const out: SlotReport[] = [];
    for (let i = 0; i < SLOT_COUNT; i++) out.push(this.read(i, expect, keepEntries));
    return out;
  }

  private expectation(i: number, expect: SlotExpectation | undefined): HeaderExpectation {
    return { layout: this.layout, slotIndex: i, spareBytes: expect?.spareBytes ?? this.spare.sizeBytes, ...(expect?.uuid !== undefined ? { uuid: expect.uuid } : {}), ...(expect?.mainBytes !== undefined ? { mainBytes: expect.mainBytes } : {}) };
  }

  /**
   * Reads slot i and applies every rule (format/validate.ts): header, header CRC,
   * every page CRC, every entry, unique blocks. Never throws for bad content
   * or read errors. keepEntries: true returns the entries as objects, 'pages'
   * the raw pages (reserved bytes zeroed), false nothing. `onPage` sees each
   * page that passed its checks, in order (a copy is valid only if read returns valid).
   */
  read(i: number, expect?: SlotExpectation, keepEntries: boolean | 'pages' = true, onPage?: (page: Buffer, count: number) => void): SlotReport {
    const byteOffset = this.slotOffset(i);
    const base = { index: i, byteOffset, byteLength: this.slotLength() };
    const invalid = (reason: string, header?: SlotHeader): SlotReport => ({ ...base, valid: false, reason, ...(header ? { header, sequence: header.sequence } : {}) });
    try {
      const opened = this.openCopy(i, expect);
      if ('reason' in opened) return invalid(opened.reason, opened.header);
      const { header: h, table } = opened;
      const checker = new TableChecker(this.layout, h.mainBytes, h.blockSize, h.entryCount);
      const entries: SlotEntry[] = [];
      // One pass, 1 MiB at a time, each page checked before the next chunk is read. With 'pages' the chunks
      // land in the buffer that is kept: sized by the page count that headerProblem bounded by the layout, and
      // touched only as pages are read, so a crafted copy costs what is read up to its first bad page.
      const pages = keepEntries === 'pages' ? Buffer.alloc(Math.max(1, h.pageCount) * SLOT_PAGE_BYTES) : undefined;
      const print = pages ? new Fingerprint() : undefined;
      let canonical = true;
      const bad = this.eachPage(h, table, pages, (p, page, count) => {
        const problem = checker.checkRaw(page, count, print);
        if (problem) return problem;
        if (keepEntries === true) decodePage(page, count, entries);
        onPage?.(page, count);
        if (!isCanonical(page, count)) canonical = false;
        if (pages) canonicalize(page, count);
        return undefined;
      });
      if (bad) return invalid(bad, h);
      const semantic = checker.finish();
      if (semantic) return invalid(semantic, h);
      return {
        ...base,
        valid: true,
        sequence: h.sequence,
        header: h,
        canonical,
        ...(keepEntries === true ? { entries } : {}),
        ...(pages && print ? { pages, print: print.value() } : {}),
      };
    } catch (err) {
      return invalid(readError(err));
    }
  }

  /**
   * Compares slot i with the table `state` by decoded content: pages equal
   * byte for byte are equal; others are compared entry by entry, ignoring
   * reserved bytes. A copy that holds the same table (same sequence, same
   * entries) passed every entry rule when `state` did, so only its header
   * and CRCs are checked; any other copy is read again with every rule.
   */
  compare(i: number, state: MetaState, expect?: SlotExpectation): SlotReport {
    const byteOffset = this.slotOffset(i);
    const base = { index: i, byteOffset, byteLength: this.slotLength() };
    let opened: ReturnType<SlotSet['openCopy']>;
    try {
      opened = this.openCopy(i, expect);
    } catch (err) {
      return { ...base, valid: false, reason: readError(err) };
    }
    if ('reason' in opened) return { ...base, valid: false, reason: opened.reason, ...(opened.header ? { header: opened.header, sequence: opened.header.sequence } : {}) };
    const { header: h, table } = opened;
    if (h.sequence !== state.sequence || h.entryCount !== state.entryCount) return { ...this.read(i, expect, false), matches: false };
    let canonical = true;
    let differs = false;
    let bad: string | undefined;
    try {
      bad = this.eachPage(h, table, undefined, (p, page, count) => {
        const mine = state.page(p);
        if (page.equals(mine)) return undefined;
        canonical = false;
        if (!sameEntries(page, mine, count)) {
          differs = true;
          return 'differs';
        }
        return undefined;
      });
    } catch (err) {
      return { ...base, valid: false, reason: readError(err), header: h, sequence: h.sequence };
    }
    if (differs) return { ...this.read(i, expect, false), matches: false };
    if (bad) return { ...base, valid: false, reason: bad, header: h, sequence: h.sequence };
    return { ...base, valid: true, sequence: h.sequence, header: h, matches: true, canonical };
  }

  /** Header checks (bounds first, before anything is allocated), then the page CRC table and the header CRC. */
  private openCopy(i: number, expect: SlotExpectation | undefined): { header: SlotHeader; table: Buffer } | { reason: string; header?: SlotHeader } {
    const byteOffset = this.slotOffset(i);
    const head = Buffer.alloc(SLOT_HEADER_BYTES);
    if (byteOffset + SLOT_HEADER_BYTES > this.spare.sizeBytes) return { reason: this.truncated(byteOffset + SLOT_HEADER_BYTES) };
    this.spare.read(head, byteOffset);
    const decoded = decodeHeaderFields(head);
    if (!decoded.ok) return { reason: decoded.reason };
    const h = decoded.header;
    const x = this.expectation(i, expect);
    const geometry = headerGeometryProblem(h, x);
    if (geometry) return { reason: geometry, header: h };
    // A layout of the expected size on a device that shrank: what the copy uses must be on the device.
    const end = byteOffset + this.pagesOffset + h.pageCount * SLOT_PAGE_BYTES;
    if (end > this.spare.sizeBytes) return { reason: this.truncated(end), header: h };
    const table = Buffer.alloc(4 * h.pageCount);
    if (table.length) this.spare.read(table, byteOffset + SLOT_HEADER_BYTES);
    const crcProblem = checkHeaderCrc(head, table);
    if (crcProblem) return { reason: crcProblem, header: h };
    const rules = headerProblem(h, x);
    if (rules) return { reason: rules, header: h };
    return { header: h, table };
  }

  private truncated(endByte: number): string {
    return `truncated: the copy needs ${endByte} bytes of the device, which has ${this.spare.sizeBytes}`;
  }

  /**
   * Reads the entry pages in use (into `keep` if given, else through one
   * reused chunk), checks each page's CRC and hands it to `fn` with the
   * number of entries it holds; stops at the first problem.
   */
  private eachPage(h: SlotHeader, table: Buffer, keep: Buffer | undefined, fn: (p: number, page: Buffer, count: number) => string | undefined): string | undefined {
    const byteOffset = this.slotOffset(h.slotIndex);
    const pagesPerChunk = Math.min(READ_CHUNK_BYTES, Math.max(SLOT_PAGE_BYTES, h.pageCount * SLOT_PAGE_BYTES)) / SLOT_PAGE_BYTES;
    const chunk = keep ? undefined : Buffer.alloc(pagesPerChunk * SLOT_PAGE_BYTES);
    for (let first = 0; first < h.pageCount; first += pagesPerChunk) {
      const n = Math.min(pagesPerChunk, h.pageCount - first);
      const into = keep ? keep.subarray(first * SLOT_PAGE_BYTES, (first + n) * SLOT_PAGE_BYTES) : (chunk as Buffer).subarray(0, n * SLOT_PAGE_BYTES);
      this.spare.read(into, byteOffset + this.pagesOffset + first * SLOT_PAGE_BYTES);
      for (let k = 0; k < n; k++) {
        const p = first + k;
        const page = into.subarray(k * SLOT_PAGE_BYTES, (k + 1) * SLOT_PAGE_BYTES);
        const stored = table.readUInt32LE(4 * p);
        const actual = crc32(page);
        if (stored !== actual) return `page ${p} CRC mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`;
        const bad = fn(p, page, Math.min(SLOT_ENTRIES_PER_PAGE, h.entryCount - p * SLOT_ENTRIES_PER_PAGE));
        if (bad) return bad;
      }
    }
    return undefined;
  }

  /** Writes every slot in full from `state`, one after another; returns the indexes that failed. */
  writeAll(state: MetaState, only?: readonly number[]): number[] {
    const failed: number[] = [];
    this.lastWriteBytes = 0;
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (only && !only.includes(i)) continue;
      try {
        this.writeFull(i, state);
      } catch (err) {
        if (!isDiskError(err)) throw err;
        failed.push(i);
      }
    }
    return failed;
  }

  /** Writes the changed pages of every slot (or of `only`), one slot after another; returns the indexes that failed. */
  writeUpdate(state: MetaState, pages: readonly number[], only?: ReadonlySet<number>): number[] {
    const failed: number[] = [];
    this.lastWriteBytes = 0;
    const timestamp = Date.now();
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (only && !only.has(i)) continue;
      try {
        const off = this.slotOffset(i);
        for (const p of pages) this.put(state.page(p), off + this.pagesOffset + p * SLOT_PAGE_BYTES);
        const sectors = new Set(pages.map((p) => Math.floor((SLOT_HEADER_BYTES + 4 * p) / SECTOR_BYTES)));
        for (const s of sectors) this.put(this.tableSector(state, s), off + s * SECTOR_BYTES);
        this.put(state.header(i, timestamp), off);
        this.spare.flush();
      } catch (err) {
        if (!isDiskError(err)) throw err;
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
}

/** The reason of a copy that could not be read: a disk error's cause; anything else is a bug and is rethrown. */
function readError(err: unknown): string {
  if (!isDiskError(err)) throw err;
  return `read error: ${err instanceof RemapfsError ? err.causeText : String(err)}`;
}

/** True when the page is what remapfs writes: reserved entry bytes and unused entries all zero. */
function isCanonical(page: Buffer, count: number): boolean {
  for (let i = 0; i < count; i++) if (page.readUInt32LE(i * SLOT_ENTRY_BYTES + 28) !== 0) return false;
  for (let off = count * SLOT_ENTRY_BYTES; off < SLOT_PAGE_BYTES; off += 4) if (page.readUInt32LE(off) !== 0) return false;
  return true;
}

/** Zeroes reserved entry bytes and unused entries in place (reserved fields are ignored on read). */
export function canonicalize(page: Buffer, count: number): void {
  for (let i = 0; i < count; i++) page.writeUInt32LE(0, i * SLOT_ENTRY_BYTES + 28);
  page.fill(0, count * SLOT_ENTRY_BYTES, SLOT_PAGE_BYTES);
}

/** Equal decoded entries: every field but the 4 reserved bytes. */
function sameEntries(a: Buffer, b: Buffer, count: number): boolean {
  for (let i = 0; i < count; i++) {
    const off = i * SLOT_ENTRY_BYTES;
    if (a.compare(b, off, off + 28, off, off + 28) !== 0) return false;
  }
  return true;
}
