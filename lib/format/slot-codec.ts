/**
 * Metadata slot codec (pure). docs/format.md is the normative description;
 * this file implements it.
 *
 * A slot is: a 512-byte fixed header, a table of one CRC32 per entry page in
 * use (from byte 512), then 4096-byte entry pages from byte `headerBytes`
 * (see layout.ts). The header CRC (bytes 508..511) covers header bytes 0..507
 * followed by the page CRC table, so one header CRC seals the whole slot and a
 * page written without its header (or the reverse) is caught.
 *
 * All integers are little-endian. 64-bit fields are written as two 32-bit
 * halves (low first), which is the same bytes as u64 LE for values < 2^53.
 */
import CRC32 from 'crc-32';
import * as zlib from 'zlib';
import { SLOT_ENTRIES_PER_PAGE, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES } from './layout.js';

export const SLOT_MAGIC = 'RMPFSLOT';
export const FORMAT_VERSION = 1;
export const HEADER_CRC_OFFSET = 508;
export const NAME_BYTES = 64;
/** u64 all-ones, as written for "no block". */
export const NO_BLOCK = -1;

/** Why a block was remapped; stored as a code (REASONS). */
export type RemapReason = 'manual' | 'write-error' | 'read-error' | 'weak-read' | 'scan-slow' | 'imported' | 'label';

export type EntryState = 'remapped' | 'pending' | 'retired';

export interface SlotEntry {
  /** -1 for a retired spare block (no main block). */
  mainBlock: number;
  /** -1 for a pending block (no spare block yet). */
  spareBlock: number;
  createdAt: number;
  reason: RemapReason | 'none';
  state: EntryState;
  lostSectors: number;
}

export interface SlotHeader {
  uuid: string;
  name: string;
  sequence: number;
  timestamp: number;
  blockSize: number;
  slotIndex: number;
  slotCount: number;
  slotBlocks: number;
  mainBytes: number;
  spareBytes: number;
  entryCapacity: number;
  entryCount: number;
  pageCount: number;
}

/** Reason and state codes of an entry (docs/format.md): the index is the code. */
export const REASONS: ReadonlyArray<RemapReason | 'none'> = ['none', 'manual', 'write-error', 'read-error', 'weak-read', 'scan-slow', 'imported', 'label'];
export const STATES: ReadonlyArray<EntryState | 'empty'> = ['empty', 'remapped', 'pending', 'retired'];

/** zlib's CRC-32 (Node 20.15 and later; the same function, in C): crc-32 where Node has none. */
const zlibCrc32: ((data: Uint8Array, value?: number) => number) | undefined = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 (IEEE 802.3, reflected 0xEDB88320, init and xorout 0xFFFFFFFF) as an unsigned number. */
export function crc32(data: Uint8Array, seed?: number): number {
  if (zlibCrc32) return zlibCrc32(data, seed === undefined ? 0 : seed >>> 0);
  return CRC32.buf(data, seed) >>> 0;
}

/** Continues a CRC: crc32(a ++ b) === crc32Continue(crc32(a), b). */
export function crc32Continue(previous: number, data: Uint8Array): number {
  if (zlibCrc32) return zlibCrc32(data, previous >>> 0);
  return CRC32.buf(data, previous | 0) >>> 0;
}

export function pagesFor(entryCount: number): number {
  return Math.ceil(entryCount / SLOT_ENTRIES_PER_PAGE);
}

function writeU64(buf: Buffer, off: number, value: number): void {
  if (value === NO_BLOCK) {
    buf.writeUInt32LE(0xffffffff, off);
    buf.writeUInt32LE(0xffffffff, off + 4);
    return;
  }
  buf.writeUInt32LE(value % 0x100000000, off);
  buf.writeUInt32LE(Math.floor(value / 0x100000000), off + 4);
}

function readU64(buf: Buffer, off: number): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (lo === 0xffffffff && hi === 0xffffffff) return NO_BLOCK;
  return hi * 0x100000000 + lo;
}

function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Writes the fixed header fields (not the CRC) into the first 512 bytes of `out`. */
export function encodeHeaderFields(h: SlotHeader, out: Buffer): void {
  out.fill(0, 0, SLOT_HEADER_BYTES);
  out.write(SLOT_MAGIC, 0, 'ascii');
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(SLOT_HEADER_BYTES, 12);
  uuidToBytes(h.uuid).copy(out, 16);
  writeU64(out, 32, h.sequence);
  writeU64(out, 40, h.timestamp);
  out.writeUInt32LE(h.blockSize, 48);
  out.writeUInt32LE(h.slotIndex, 52);
  out.writeUInt32LE(h.slotCount, 56);
  out.writeUInt32LE(h.slotBlocks, 60);
  writeU64(out, 64, h.mainBytes);
  writeU64(out, 72, h.spareBytes);
  writeU64(out, 80, h.entryCapacity);
  writeU64(out, 88, h.entryCount);
  out.writeUInt32LE(h.pageCount, 96);
  out.writeUInt32LE(0, 100);
  const name = Buffer.from(h.name, 'utf8');
  if (name.length > NAME_BYTES) throw new Error(`pair name longer than ${NAME_BYTES} bytes`);
  name.copy(out, 104);
}

/** The header CRC over header bytes 0..507 and the page CRC table. */
export function headerCrc(header: Buffer, pageCrcTable: Buffer): number {
  return crc32Continue(crc32(header.subarray(0, HEADER_CRC_OFFSET)), pageCrcTable);
}

export type HeaderResult = { ok: true; header: SlotHeader } | { ok: false; reason: string };

/**
 * Checks magic, version and field sanity of a header (bytes 0..511) and its CRC
 * against `pageCrcTable` (exactly 4 * pageCount bytes, read from byte 512).
 */
export function decodeHeaderFields(buf: Buffer): HeaderResult {
  if (buf.length < SLOT_HEADER_BYTES) return { ok: false, reason: `truncated header (${buf.length} of ${SLOT_HEADER_BYTES} bytes)` };
  if (buf.toString('ascii', 0, 8) !== SLOT_MAGIC) return { ok: false, reason: 'bad magic (not a remapfs metadata slot)' };
  const version = buf.readUInt32LE(8);
  if (version !== FORMAT_VERSION) return { ok: false, reason: `unsupported format version ${version} (this remapfs reads ${FORMAT_VERSION})` };
  if (buf.readUInt32LE(12) !== SLOT_HEADER_BYTES) return { ok: false, reason: 'bad header size' };
  const nameEnd = buf.indexOf(0, 104);
  const header: SlotHeader = {
    uuid: bytesToUuid(buf.subarray(16, 32)),
    sequence: readU64(buf, 32),
    timestamp: readU64(buf, 40),
    blockSize: buf.readUInt32LE(48),
    slotIndex: buf.readUInt32LE(52),
    slotCount: buf.readUInt32LE(56),
    slotBlocks: buf.readUInt32LE(60),
    mainBytes: readU64(buf, 64),
    spareBytes: readU64(buf, 72),
    entryCapacity: readU64(buf, 80),
    entryCount: readU64(buf, 88),
    pageCount: buf.readUInt32LE(96),
    name: buf.toString('utf8', 104, nameEnd < 0 || nameEnd > 104 + NAME_BYTES ? 104 + NAME_BYTES : nameEnd),
  };
  if (header.pageCount !== pagesFor(header.entryCount)) return { ok: false, reason: 'entry count and page count disagree' };
  if (header.entryCount > header.entryCapacity) return { ok: false, reason: 'more entries than capacity' };
  return { ok: true, header };
}

export function checkHeaderCrc(header: Buffer, pageCrcTable: Buffer): string | undefined {
  const stored = header.readUInt32LE(HEADER_CRC_OFFSET);
  const actual = headerCrc(header, pageCrcTable);
  return stored === actual ? undefined : `header CRC mismatch (stored ${hex32(stored)}, computed ${hex32(actual)})`;
}

export function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

export function encodeEntry(e: SlotEntry, out: Buffer, off: number): void {
  writeU64(out, off, e.mainBlock);
  writeU64(out, off + 8, e.spareBlock);
  writeU64(out, off + 16, e.createdAt);
  const reason = REASONS.indexOf(e.reason);
  const state = STATES.indexOf(e.state);
  if (reason < 0 || state <= 0) throw new Error(`cannot encode entry with reason ${e.reason} and state ${e.state}`);
  out.writeUInt8(reason, off + 24);
  out.writeUInt8(state, off + 25);
  out.writeUInt16LE(Math.min(e.lostSectors, 0xffff), off + 26);
  out.writeUInt32LE(0, off + 28);
}

/** Decodes one entry; undefined for an empty (all-zero state) entry or unknown codes. */
export function decodeEntry(buf: Buffer, off: number): SlotEntry | undefined {
  const state = STATES[buf.readUInt8(off + 25)];
  const reason = REASONS[buf.readUInt8(off + 24)];
  if (!state || state === 'empty' || !reason) return undefined;
  return {
    mainBlock: readU64(buf, off),
    spareBlock: readU64(buf, off + 8),
    createdAt: readU64(buf, off + 16),
    reason,
    state,
    lostSectors: buf.readUInt16LE(off + 26),
  };
}

/** Encodes entries [page*128, page*128+128) of `entries` into a 4096-byte page. */
export function encodePage(entries: readonly SlotEntry[], page: number, out: Buffer): void {
  out.fill(0, 0, SLOT_PAGE_BYTES);
  const first = page * SLOT_ENTRIES_PER_PAGE;
  const last = Math.min(entries.length, first + SLOT_ENTRIES_PER_PAGE);
  for (let i = first; i < last; i++) encodeEntry(entries[i] as SlotEntry, out, (i - first) * SLOT_ENTRY_BYTES);
}

/** Decodes `count` entries from a page; returns a reason string on a malformed entry. */
export function decodePage(buf: Buffer, count: number, into: SlotEntry[]): string | undefined {
  for (let i = 0; i < count; i++) {
    const e = decodeEntry(buf, i * SLOT_ENTRY_BYTES);
    if (!e) return `entry ${into.length} is malformed`;
    into.push(e);
  }
  return undefined;
}
