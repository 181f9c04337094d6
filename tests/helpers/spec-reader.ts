/**
 * A second, minimal reader of remapfs spares and labels, written only from
 * docs/format.md (it imports nothing from lib/). Tests compare what it finds
 * with what the tool reports, so a difference between the document and the
 * code shows up as a failing test. Plain and slow on purpose: u64 fields are
 * BigInts, entries are objects.
 */
import * as fs from 'fs';
import CRC32 from 'crc-32';

export const SPEC_REASONS = ['none', 'manual', 'write-error', 'read-error', 'weak-read', 'scan-slow', 'imported', 'label'];
export const SPEC_STATES = ['empty', 'remapped', 'pending', 'retired'];
const NONE = 0xffffffffffffffffn;
const LIMIT = 2n ** 53n;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface SpecEntry {
  mainBlock: number | null;
  spareBlock: number | null;
  time: number;
  reason: string;
  state: string;
  lostSectors: number;
}

export interface SpecTable {
  blockSize: number;
  adoptedSlot: number;
  sequence: number;
  uuid: string;
  name: string;
  mainBytes: number;
  entries: SpecEntry[];
  /** Per slot: current, stale or invalid (with the adopted copy as the table in force). */
  slots: string[];
}

export type Reader = (byteOffset: number, length: number) => Buffer;

export function fileReader(file: string): { read: Reader; sizeBytes: number; close: () => void } {
  const fd = fs.openSync(file, 'r');
  const sizeBytes = fs.fstatSync(fd).size;
  return {
    sizeBytes,
    read: (off, len) => {
      const b = Buffer.alloc(len);
      if (off + len > sizeBytes) throw new Error('read past the end');
      fs.readSync(fd, b, 0, len, off);
      return b;
    },
    close: () => fs.closeSync(fd),
  };
}

function crc(...parts: Buffer[]): number {
  let c = 0;
  for (const p of parts) c = CRC32.buf(p, c);
  return c >>> 0;
}

/** "Spare layout": slotBlocks, slot starts, and the pool test, from S and B. */
export function specGeometry(S: number, B: number): { slotBlocks: number; starts: number[]; headerBytes: number; inPool: (k: number) => boolean; ok: boolean } {
  const roundUp = (n: number, u: number): number => Math.ceil(n / u) * u;
  const pages = Math.ceil(S / 128);
  const headerBytes = roundUp(512 + 4 * pages, 4096);
  const slotBlocks = roundUp(headerBytes + pages * 4096, B) / B;
  const starts = [0, 1, 2, 3, 4].map((i) => Math.floor((i * (S - slotBlocks)) / 4));
  const inPool = (k: number): boolean => k >= 0 && k < S && starts.every((st) => k < st || k >= st + slotBlocks);
  const ok = S >= 5 * slotBlocks && S - 5 * slotBlocks > 0;
  return { slotBlocks, starts, headerBytes, inPool, ok };
}

interface Header {
  uuid: string;
  sequence: bigint;
  timestamp: bigint;
  blockSize: number;
  slotIndex: number;
  slotCount: number;
  slotBlocks: number;
  mainBytes: bigint;
  spareBytes: bigint;
  capacity: bigint;
  entryCount: bigint;
  pageCount: number;
  name: string;
}

/** Rule 1: magic, version, header size, pageCount = ceil(entryCount / 128), entryCount <= capacity. */
function decodeHeader(h: Buffer): Header | undefined {
  if (h.toString('latin1', 0, 8) !== 'RMPFSLOT' || h.readUInt32LE(8) !== 1 || h.readUInt32LE(12) !== 512) return undefined;
  const hex = h.toString('hex', 16, 32);
  let nameEnd = h.indexOf(0, 104);
  if (nameEnd < 0 || nameEnd > 168) nameEnd = 168;
  const hd: Header = {
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    sequence: h.readBigUInt64LE(32),
    timestamp: h.readBigUInt64LE(40),
    blockSize: h.readUInt32LE(48),
    slotIndex: h.readUInt32LE(52),
    slotCount: h.readUInt32LE(56),
    slotBlocks: h.readUInt32LE(60),
    mainBytes: h.readBigUInt64LE(64),
    spareBytes: h.readBigUInt64LE(72),
    capacity: h.readBigUInt64LE(80),
    entryCount: h.readBigUInt64LE(88),
    pageCount: h.readUInt32LE(96),
    name: h.toString('utf8', 104, nameEnd),
  };
  if (BigInt(hd.pageCount) !== (hd.entryCount + 127n) / 128n || hd.entryCount > hd.capacity) return undefined;
  return hd;
}

/** Every rule of "Validity" for the copy at slot i; returns its entries or a reason. */
function readCopy(read: Reader, S: number, B: number, i: number, known: { uuid?: string; mainBytes?: number }, spareBytes: number): { header: Header; entries: SpecEntry[] } | string {
  const g = specGeometry(S, B);
  const base = g.starts[i] as number;
  let h: Buffer;
  try {
    h = read(base * B, 512);
  } catch {
    return 'read error';
  }
  const hd = decodeHeader(h);
  if (!hd) return 'header form';
  const isPow2 = (n: number): boolean => n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
  if (hd.slotIndex !== i || !isPow2(hd.blockSize) || hd.blockSize !== B || hd.slotCount !== 5 || hd.slotBlocks !== g.slotBlocks || hd.capacity !== BigInt(S) || hd.entryCount > hd.capacity) return 'geometry';
  let table: Buffer;
  let pages: Buffer;
  try {
    table = read(base * B + 512, 4 * hd.pageCount);
    pages = read(base * B + g.headerBytes, hd.pageCount * 4096);
  } catch {
    return 'read error';
  }
  if (crc(h.subarray(0, 508), table) !== h.readUInt32LE(508)) return 'header CRC';
  if (hd.sequence < 1n || hd.sequence >= LIMIT || hd.timestamp >= LIMIT) return 'sequence or time';
  if (hd.spareBytes !== BigInt(spareBytes)) return 'spare size';
  if (hd.mainBytes < BigInt(B) || hd.mainBytes >= LIMIT) return 'main size';
  if (known.mainBytes !== undefined && hd.mainBytes !== BigInt(known.mainBytes)) return 'main size';
  if (!g.ok) return 'no pool';
  if (!NAME_RE.test(hd.name) || Buffer.byteLength(hd.name) > 64) return 'name';
  if (!UUID_RE.test(hd.uuid)) return 'uuid';
  if (known.uuid !== undefined && hd.uuid !== known.uuid) return 'other pair';
  for (let p = 0; p < hd.pageCount; p++) {
    if (crc(pages.subarray(p * 4096, (p + 1) * 4096)) !== table.readUInt32LE(4 * p)) return `page ${p} CRC`;
  }
  const entries: SpecEntry[] = [];
  for (let k = 0; k < Number(hd.entryCount); k++) {
    const off = Math.floor(k / 128) * 4096 + 32 * (k % 128);
    const num = (o: number): number | null | undefined => {
      const v = pages.readBigUInt64LE(off + o);
      return v === NONE ? null : v >= LIMIT ? undefined : Number(v);
    };
    const mainBlock = num(0);
    const spareBlock = num(8);
    const time = num(16);
    if (mainBlock === undefined || spareBlock === undefined || time === undefined || time === null) return `entry ${k}: number`;
    const reason = SPEC_REASONS[pages.readUInt8(off + 24)];
    const state = SPEC_STATES[pages.readUInt8(off + 25)];
    if (!reason || !state || state === 'empty') return `entry ${k}: codes`;
    entries.push({ mainBlock, spareBlock, time, reason, state, lostSectors: pages.readUInt16LE(off + 26) });
  }
  const bad = specTableProblem(entries, S, B, Number(hd.mainBytes));
  if (bad) return bad;
  return { header: hd, entries };
}

/** Rules 6 and 7: the state table, pool membership, uniqueness. Used by the fuzz test as the independent checker. */
export function specTableProblem(entries: readonly SpecEntry[], S: number, B: number, mainBytes: number): string | undefined {
  const g = specGeometry(S, B);
  const V = Math.floor(mainBytes / B);
  const mains = new Set<number>();
  const spares = new Set<number>();
  for (const [k, e] of entries.entries()) {
    const mainOk = e.mainBlock !== null && e.mainBlock >= 0 && e.mainBlock < V;
    const spareOk = e.spareBlock !== null && g.inPool(e.spareBlock);
    const lostOk = e.lostSectors <= B / 512;
    let ok: boolean;
    if (e.state === 'remapped') ok = mainOk && spareOk && e.reason !== 'none' && lostOk && (e.reason !== 'label' || e.mainBlock === V - 1);
    else if (e.state === 'pending') ok = mainOk && e.spareBlock === null && (e.reason === 'read-error' || e.reason === 'imported') && lostOk;
    else if (e.state === 'retired') ok = e.mainBlock === null && spareOk && e.reason === 'none' && e.lostSectors === 0;
    else ok = false;
    if (!ok) return `entry ${k}: state table`;
    if (e.state !== 'retired') {
      if (mains.has(e.mainBlock as number)) return `entry ${k}: main block twice`;
      mains.add(e.mainBlock as number);
    }
    if (e.state !== 'pending') {
      if (spares.has(e.spareBlock as number)) return `entry ${k}: spare block twice`;
      spares.add(e.spareBlock as number);
    }
  }
  return undefined;
}

function sameEntries(a: readonly SpecEntry[], b: readonly SpecEntry[]): boolean {
  return a.length === b.length && a.every((e, k) => JSON.stringify(e) === JSON.stringify(b[k]));
}

/** "Choosing a copy" for one B: candidates by sequence (then index), the first valid one adopted. */
function adopt(read: Reader, S: number, B: number, spareBytes: number, known: { uuid?: string; mainBytes?: number }): SpecTable | undefined {
  const g = specGeometry(S, B);
  if (S < 5 * g.slotBlocks) return undefined;
  const candidates: Array<{ i: number; seq: bigint }> = [];
  for (let i = 0; i < 5; i++) {
    let hd: Header | undefined;
    try {
      hd = decodeHeader(read((g.starts[i] as number) * B, 512));
    } catch {
      hd = undefined;
    }
    if (hd) candidates.push({ i, seq: hd.sequence });
  }
  candidates.sort((x, y) => (x.seq > y.seq ? -1 : x.seq < y.seq ? 1 : x.i - y.i));
  for (const c of candidates) {
    const copy = readCopy(read, S, B, c.i, known, spareBytes);
    if (typeof copy === 'string') continue;
    const expect = { uuid: copy.header.uuid, mainBytes: Number(copy.header.mainBytes) };
    const slots = [0, 1, 2, 3, 4].map((k) => {
      if (k === c.i) return 'current';
      const other = readCopy(read, S, B, k, expect, spareBytes);
      if (typeof other === 'string') return 'invalid';
      return other.header.sequence === copy.header.sequence && sameEntries(other.entries, copy.entries) ? 'current' : 'stale';
    });
    return {
      blockSize: B,
      adoptedSlot: c.i,
      sequence: Number(copy.header.sequence),
      uuid: copy.header.uuid,
      name: copy.header.name,
      mainBytes: Number(copy.header.mainBytes),
      entries: copy.entries,
      slots,
    };
  }
  return undefined;
}

/**
 * The table a spare holds. Without `known.blockSize` (a spare of unknown
 * pair) B is found as "Finding B on a spare of unknown pair" says; S comes
 * from `spareBytes` (the device's size, or the pair's recorded one).
 */
export function specReadSpare(read: Reader, spareBytes: number, known: { uuid?: string; mainBytes?: number; blockSize?: number } = {}): SpecTable | undefined {
  const sizes: number[] = [];
  if (known.blockSize !== undefined) sizes.push(known.blockSize);
  else {
    let first: Header | undefined;
    try {
      first = decodeHeader(read(0, 512));
    } catch {
      first = undefined;
    }
    const isPow2 = (n: number): boolean => n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
    if (first && isPow2(first.blockSize)) sizes.push(first.blockSize);
    for (let b = 512; b <= 65536; b *= 2) {
      if (sizes.includes(b)) continue;
      const S = Math.floor(spareBytes / b);
      const g = specGeometry(S, b);
      if (S < 5 * g.slotBlocks) continue;
      for (let i = 1; i < 5; i++) {
        let hd: Header | undefined;
        try {
          hd = decodeHeader(read((g.starts[i] as number) * b, 512));
        } catch {
          hd = undefined;
        }
        if (hd && hd.blockSize === b && hd.slotIndex === i) {
          sizes.push(b);
          break;
        }
      }
    }
  }
  for (const B of sizes) {
    const t = adopt(read, Math.floor(spareBytes / B), B, spareBytes, known);
    if (t) return t;
  }
  return undefined;
}

/** "Main label": the first valid label, trying b = 512 .. 65536. */
export function specReadLabel(read: Reader, mainBytes: number): { uuid: string; name: string; blockSize: number } | undefined {
  for (let b = 512; b <= 65536; b *= 2) {
    const block = Math.floor(mainBytes / b) - 1;
    if (block < 0) continue;
    let l: Buffer;
    try {
      l = read(block * b, 512);
    } catch {
      continue;
    }
    if (l.toString('latin1', 0, 8) !== 'RMPFSLBL' || l.readUInt32LE(8) !== 1 || crc(l.subarray(0, 508)) !== l.readUInt32LE(508)) continue;
    const size = l.readBigUInt64LE(32);
    const lb = l.readBigUInt64LE(40);
    const time = l.readBigUInt64LE(48);
    if (l.readUInt32LE(12) !== b || size !== BigInt(mainBytes) || lb !== BigInt(block) || size >= LIMIT || time >= LIMIT) continue;
    const hex = l.toString('hex', 16, 32);
    const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    let end = l.indexOf(0, 56);
    if (end < 0 || end > 120) end = 120;
    const name = l.toString('utf8', 56, end);
    if (!NAME_RE.test(name) || !UUID_RE.test(uuid)) continue;
    return { uuid, name, blockSize: b };
  }
  return undefined;
}
