/**
 * Probing candidates: what each device or file is to remapfs (I/O,
 * synchronous; it runs in the discovery worker for the daemon, inline for the
 * CLI).
 *
 * Bounded cost, in two steps. Headers first: each candidate's slot headers
 * (512 bytes each) and page CRC tables (4 bytes per page), with every header
 * rule and the header CRC, and its main label. Entry pages are read only for
 * the UUIDs asked for, and for UUIDs whose main label is among the candidates
 * (a pair that may be imported). A table is read one copy at a time through
 * SlotSet.read's single reused chunk: the entry count is bounded by
 * headerGeometryProblem (the device's real capacity) before anything is
 * allocated, no copy of a table is kept, and the fingerprint is summed page by
 * page.
 *
 * Cache (ProbeCache): per path, what was learned, under a key of the
 * candidate's dev, ino, size, mtime and ctime, the block size and every sound
 * slot header's index, sequence and stored CRC (the CRC seals the header and
 * the page CRC table, so any page change shows). An unchanged candidate costs
 * a stat, its headers and its label; its table is not read again.
 *
 * Errors: a candidate that cannot be opened or stat'ed (any errno: gone,
 * busy, not allowed) is nothing; a disk error reading a copy makes it
 * unsound; bad bytes are refused by the decoders' typed results; any other
 * exception is a bug and propagates (the worker reports it, the run fails).
 */
import * as fs from 'fs';
import type { BlockDevice } from '../block/device.js';
import { isDiskError, isPathRefusal } from '../block/disk-error.js';
import { FileDevice } from '../block/file-device.js';
import { SLOT_COUNT, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, slotHeaderRegionBytes, type SpareLayout, spareLayout } from '../format/layout.js';
import type { MainLabel } from '../format/label-codec.js';
import { crc32, crc32Continue, decodeHeaderFields, HEADER_CRC_OFFSET, hex32, type SlotHeader } from '../format/slot-codec.js';
import { headerGeometryProblem, headerProblem, rawU64 } from '../format/validate.js';
import { Fingerprint } from '../format/fingerprint.js';
import { candidateBlockSizes } from '../meta/locate.js';
import { SlotSet } from '../meta/slots.js';
import { hardwareId } from './hardware.js';
import { readLabel } from './label.js';

/** Bytes read at a time when two copies are compared. */
const CHUNK_BYTES = 1024 * 1024;

export interface SpareFound {
  path: string;
  uuid: string;
  name: string;
  sequence: number;
  /** Copies that passed every rule (tableChecked), or only the header rules and the header CRC (not). */
  validSlots: number;
  blockSize: number;
  mainBytes: number;
  /** The table's fingerprint when checked; else the entry count and the CRC of the page CRC table. */
  tablePrint: string;
  /** Whether the entry pages were read and checked, or only the headers. */
  tableChecked: boolean;
  hardwareId: string | null;
}

export interface MainFound {
  path: string;
  label: MainLabel;
  hardwareId: string | null;
}

export interface Probed {
  path: string;
  spare?: SpareFound;
  main?: MainFound;
}

/** Cumulative counters of one prober (a worker's life, or one CLI run). */
export interface ProbeStats {
  runs: number;
  candidates: number;
  /** Candidates answered from the cache (headers unchanged). */
  cacheHits: number;
  /** Slot copies whose entry pages were read in full, and the entries in them. */
  tableReads: number;
  entriesRead: number;
  /** The paths whose tables the last run read. */
  lastRead: string[];
}

export function newProbeStats(): ProbeStats {
  return { runs: 0, candidates: 0, cacheHits: 0, tableReads: 0, entriesRead: 0, lastRead: [] };
}

/** Whose tables to read: every one (the CLI), or those of these UUIDs (and of labels found). */
export type TablesFor = 'all' | { uuids: readonly string[] };

interface CopyHead {
  index: number;
  header: SlotHeader;
  headerCrc: number;
  tableCrc: number;
}

interface Learned {
  key: string;
  spare: SpareFound | undefined;
  tableChecked: boolean;
}

export class ProbeCache {
  private readonly byPath = new Map<string, Learned>();

  get(p: string, key: string): Learned | undefined {
    const l = this.byPath.get(p);
    return l && l.key === key ? l : undefined;
  }

  set(p: string, learned: Learned): void {
    this.byPath.set(p, learned);
  }

  /** Forgets the paths that are no longer candidates. */
  retain(paths: ReadonlySet<string>): void {
    for (const p of [...this.byPath.keys()]) if (!paths.has(p)) this.byPath.delete(p);
  }

  get size(): number {
    return this.byPath.size;
  }
}

/**
 * Slot i's header if it passes every header rule and the header CRC. Reads 512
 * bytes, then streams the page CRC table (4 bytes per page in use) through one
 * chunk of at most 1 MiB, whatever count the header claims.
 */
function soundHead(dev: BlockDevice, layout: SpareLayout, i: number): CopyHead | undefined {
  try {
    const byteOffset = (layout.slots[i]?.startBlock ?? 0) * layout.blockSize;
    const head = Buffer.alloc(SLOT_HEADER_BYTES);
    dev.read(head, byteOffset);
    const d = decodeHeaderFields(head);
    if (!d.ok) return undefined;
    const x = { layout, slotIndex: i, spareBytes: dev.sizeBytes };
    if (headerGeometryProblem(d.header, x) || headerProblem(d.header, x)) return undefined;
    const tableBytes = 4 * d.header.pageCount;
    const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(4, tableBytes)));
    let headerCrc = crc32(head.subarray(0, HEADER_CRC_OFFSET));
    let tableCrc = 0;
    for (let off = 0; off < tableBytes; off += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, tableBytes - off));
      dev.read(part, byteOffset + SLOT_HEADER_BYTES + off);
      headerCrc = crc32Continue(headerCrc, part);
      tableCrc = crc32Continue(tableCrc, part);
    }
    const stored = head.readUInt32LE(HEADER_CRC_OFFSET);
    return headerCrc === stored ? { index: i, header: d.header, headerCrc: stored, tableCrc } : undefined;
  } catch (err) {
    if (!isDiskError(err)) throw err;
    return undefined;
  }
}

/** The sound headers at the first block size that has any, newest first. */
function headView(dev: BlockDevice): { blockSize: number; sound: CopyHead[] } | undefined {
  for (const blockSize of candidateBlockSizes(dev)) {
    const layout = spareLayout(dev.sizeBytes, blockSize);
    if (layout.slots.length !== SLOT_COUNT) continue;
    const sound: CopyHead[] = [];
    for (let i = 0; i < SLOT_COUNT; i++) {
      const h = soundHead(dev, layout, i);
      if (h) sound.push(h);
    }
    if (sound.length) return { blockSize, sound: sound.sort((a, b) => b.header.sequence - a.header.sequence || a.index - b.index) };
  }
  return undefined;
}

/** Adds `count` raw entries of a page to a fingerprint, as stateFingerprint does for a table in memory. */
export function fingerprintPage(f: Fingerprint, page: Buffer, count: number): void {
  for (let k = 0; k < count; k++) {
    const off = k * SLOT_ENTRY_BYTES;
    f.addCodes(rawU64(page, off), rawU64(page, off + 8), rawU64(page, off + 16), page.readUInt16LE(off + 26), page.readUInt8(off + 25), page.readUInt8(off + 24));
  }
}

/**
 * Whether copy k holds exactly the pages of copy i, which passed every rule:
 * both headers sound, the same sequence and page CRC table, and the entry
 * pages equal byte for byte (then k passes every rule too). Streams both
 * copies through two chunks; false at the first difference.
 */
function sameCopy(dev: BlockDevice, layout: SpareLayout, i: number, k: number): boolean {
  const a = soundHead(dev, layout, i);
  const b = soundHead(dev, layout, k);
  if (!a || !b || a.header.sequence !== b.header.sequence || a.header.entryCount !== b.header.entryCount || a.tableCrc !== b.tableCrc) return false;
  const start = (n: number): number => (layout.slots[n]?.startBlock ?? 0) * layout.blockSize;
  const pagesOffset = slotHeaderRegionBytes(layout.slotEntryCapacity);
  return (
    sameBytes(dev, start(i) + SLOT_HEADER_BYTES, start(k) + SLOT_HEADER_BYTES, 4 * a.header.pageCount) &&
    sameBytes(dev, start(i) + pagesOffset, start(k) + pagesOffset, a.header.pageCount * SLOT_PAGE_BYTES)
  );
}

/** Whether `byteCount` bytes at two offsets are equal, read through two chunks of at most 1 MiB. */
function sameBytes(dev: BlockDevice, aOffset: number, bOffset: number, byteCount: number): boolean {
  const size = Math.min(CHUNK_BYTES, Math.max(1, byteCount));
  const x = Buffer.alloc(size);
  const y = Buffer.alloc(size);
  try {
    for (let off = 0; off < byteCount; off += size) {
      const n = Math.min(size, byteCount - off);
      dev.read(x.subarray(0, n), aOffset + off);
      dev.read(y.subarray(0, n), bOffset + off);
      if (!x.subarray(0, n).equals(y.subarray(0, n))) return false;
    }
  } catch (err) {
    if (!isDiskError(err)) throw err;
    return false;
  }
  return true;
}

/**
 * The adopted copy as locateMetadata chooses it (block sizes in order, copies
 * by sequence, highest first, the first that passes every rule), checked and
 * fingerprinted in one streaming pass. Each other copy is valid if it is the
 * same bytes (sameCopy), else if it passes every rule when read on its own.
 */
function checkTables(dev: BlockDevice, p: string, stats: ProbeStats): SpareFound | undefined {
  for (const blockSize of candidateBlockSizes(dev)) {
    const layout = spareLayout(dev.sizeBytes, blockSize);
    if (layout.slots.length !== SLOT_COUNT) continue;
    const slots = new SlotSet(dev, layout);
    const peeked = Array.from({ length: SLOT_COUNT }, (_, i) => slots.peekHeader(i));
    const order = [...peeked.keys()].filter((i) => peeked[i]).sort((a, b) => (peeked[b]?.sequence ?? 0) - (peeked[a]?.sequence ?? 0) || a - b);
    for (const i of order) {
      const f = new Fingerprint();
      const r = slots.read(i, {}, false, (page, count) => fingerprintPage(f, page, count));
      stats.tableReads++;
      if (!r.valid || !r.header) continue;
      const h = r.header;
      stats.entriesRead += h.entryCount;
      let validSlots = 1;
      for (const k of order) {
        if (k === i) continue;
        stats.tableReads++;
        if (sameCopy(dev, layout, i, k) || slots.read(k, { uuid: h.uuid, mainBytes: h.mainBytes }, false).valid) validSlots++;
      }
      return { path: p, uuid: h.uuid, name: h.name, sequence: h.sequence, validSlots, blockSize: h.blockSize, mainBytes: h.mainBytes, tablePrint: f.value(), tableChecked: true, hardwareId: hardwareId(p) ?? null };
    }
  }
  return undefined;
}

function fromHeaders(view: { sound: CopyHead[] }, p: string): SpareFound {
  const newest = view.sound[0] as CopyHead;
  const h = newest.header;
  return {
    path: p,
    uuid: h.uuid,
    name: h.name,
    sequence: h.sequence,
    validSlots: view.sound.filter((c) => c.header.uuid === h.uuid).length,
    blockSize: h.blockSize,
    mainBytes: h.mainBytes,
    tablePrint: `pages:${h.entryCount}:${hex32(newest.tableCrc)}`,
    tableChecked: false,
    hardwareId: hardwareId(p) ?? null,
  };
}

function openQuietly(p: string): FileDevice | undefined {
  try {
    return FileDevice.open(p, { readOnly: true, mode: 'buffered' });
  } catch (err) {
    if (!isPathRefusal(err)) throw err;
    return undefined;
  }
}

/** Probes every path (see the design note); a path that cannot be opened or read is nothing. */
export function probeCandidates(paths: readonly string[], tablesFor: TablesFor, cache: ProbeCache | undefined, stats: ProbeStats): Probed[] {
  stats.runs++;
  stats.lastRead = [];
  const heads: Array<{ path: string; key: string; view: ReturnType<typeof headView>; main?: MainFound }> = [];
  for (const p of paths) {
    stats.candidates++;
    const dev = openQuietly(p);
    if (!dev) continue;
    try {
      const st = fs.statSync(p);
      const view = headView(dev);
      const label = readLabel(dev);
      const seen = view ? `${view.blockSize}:${view.sound.map((c) => `${c.index}/${c.header.sequence}/${c.headerCrc}`).join(',')}` : 'none';
      heads.push({ path: p, key: `${st.dev}:${st.ino}:${dev.sizeBytes}:${st.mtimeMs}:${st.ctimeMs}|${seen}`, view, ...(label ? { main: { path: p, label, hardwareId: hardwareId(p) ?? null } } : {}) });
    } catch (err) {
      // Gone, replaced or unreadable since it was listed: not a candidate this run.
      if (!isPathRefusal(err)) throw err;
      continue;
    } finally {
      dev.close();
    }
  }
  const wanted = tablesFor === 'all' ? undefined : new Set([...tablesFor.uuids, ...heads.flatMap((h) => (h.main ? [h.main.label.uuid] : []))]);
  const out: Probed[] = [];
  for (const h of heads) {
    const probed: Probed = { path: h.path, ...(h.main ? { main: h.main } : {}) };
    out.push(probed);
    if (!h.view) continue;
    const wantTable = !wanted || wanted.has((h.view.sound[0] as CopyHead).header.uuid);
    const cached = cache?.get(h.path, h.key);
    let learned: Learned;
    if (cached && (cached.tableChecked || !wantTable)) {
      stats.cacheHits++;
      learned = cached;
    } else if (!wantTable) {
      learned = { key: h.key, spare: fromHeaders(h.view, h.path), tableChecked: false };
    } else {
      const dev = openQuietly(h.path);
      stats.lastRead.push(h.path);
      let spare: SpareFound | undefined;
      try {
        spare = dev ? checkTables(dev, h.path, stats) : undefined;
      } finally {
        dev?.close();
      }
      learned = { key: h.key, spare, tableChecked: true };
    }
    cache?.set(h.path, learned);
    if (learned.spare) probed.spare = learned.spare;
  }
  cache?.retain(new Set(paths));
  return out;
}
