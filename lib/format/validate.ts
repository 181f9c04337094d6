/**
 * Validity rules for remapfs metadata (pure). Every table remapfs adopts,
 * from a slot, from an import, from discovery or from the database, passes
 * through here first; docs/format.md ("Validity") is the written form of
 * these rules, and the two must agree.
 *
 * Bounds before allocation: a header is checked (entryCount <= capacity, and
 * capacity equal to the capacity the spare's real size gives) before any
 * entry is read, so the work and memory of checking a table are bounded by
 * the spare device's real size, never by a number in a header. The entry
 * checker holds one bit per spare block and 8 bytes per entry.
 *
 * Raw reads: u64 fields are read as two u32 halves, so a value of 2^53 or
 * more is seen and refused instead of being rounded.
 */
import { SECTOR_BYTES, SLOT_COUNT, SLOT_ENTRY_BYTES, type SpareLayout, validateBlockSize } from './layout.js';
import type { Fingerprint } from './fingerprint.js';
import { NAME_BYTES, pagesFor, REASONS, type SlotEntry, type SlotHeader, STATES } from './slot-codec.js';

/** Sequence numbers, block numbers, sizes and times are below 2^53. */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/** The `init` rule for pair names: 1-64 letters, digits, ".", "_" or "-", not starting with "." or "-". */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function pairNameProblem(name: string): string | undefined {
  if (NAME_PATTERN.test(name) && Buffer.byteLength(name, 'utf8') <= NAME_BYTES) return undefined;
  return `invalid pair name ${JSON.stringify(name)}: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`;
}

/**
 * The UUID rule: lower-case RFC 4122 text form of a version 4 UUID (variant
 * bits 10), as crypto.randomUUID makes at `init`. The nil UUID fails it.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function uuidProblem(uuid: string): string | undefined {
  return UUID_PATTERN.test(uuid) ? undefined : `invalid pair uuid ${uuid} (must be a random, version 4 UUID)`;
}

function safe(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** What a header must agree with: the geometry where it was found, and what is known of the pair. */
export interface HeaderExpectation {
  layout: SpareLayout;
  slotIndex: number;
  /** The spare's size in bytes that the layout was computed from (S = floor(spareBytes / B)). */
  spareBytes: number;
  uuid?: string;
  mainBytes?: number;
}

/**
 * The header's geometry: where it was found, block size, slot geometry,
 * capacity, and counts (entryCount <= capacity, pageCount agreeing). Checked
 * before anything is allocated from the header's numbers.
 */
export function headerGeometryProblem(h: SlotHeader, x: HeaderExpectation): string | undefined {
  const l = x.layout;
  if (h.slotIndex !== x.slotIndex) return `header says slot ${h.slotIndex}, found at slot ${x.slotIndex}`;
  const bs = validateBlockSize(h.blockSize);
  if (bs) return bs;
  if (h.blockSize !== l.blockSize) return `block size ${h.blockSize} does not match the pair (${l.blockSize})`;
  if (h.slotBlocks !== l.slotBlocks || h.slotCount !== SLOT_COUNT) return 'slot geometry does not match the spare';
  if (h.entryCapacity !== l.slotEntryCapacity) return 'entry capacity does not match the spare';
  if (!safe(h.entryCount) || h.entryCount > h.entryCapacity) return `entry count ${h.entryCount} exceeds the capacity ${h.entryCapacity}`;
  if (h.pageCount !== pagesFor(h.entryCount)) return 'entry count and page count disagree';
  return undefined;
}

/** Every header rule; undefined when the header is acceptable. Nothing is allocated. */
export function headerProblem(h: SlotHeader, x: HeaderExpectation): string | undefined {
  const geometry = headerGeometryProblem(h, x);
  if (geometry) return geometry;
  if (!safe(h.sequence) || h.sequence < 1) return `sequence number ${h.sequence} is out of range (1 to 2^53-1)`;
  if (!safe(h.timestamp)) return 'timestamp is out of range';
  if (h.spareBytes !== x.spareBytes) return `header says the spare has ${h.spareBytes} bytes, but it has ${x.spareBytes}`;
  if (!safe(h.mainBytes) || h.mainBytes < h.blockSize) return `main size ${h.mainBytes} is out of range`;
  if (x.mainBytes !== undefined && h.mainBytes !== x.mainBytes) return `header says the main has ${h.mainBytes} bytes, but the pair has ${x.mainBytes}`;
  if (x.layout.poolBlocks === 0) return 'the spare is too small to hold a pool';
  const name = pairNameProblem(h.name);
  if (name) return name;
  const uuid = uuidProblem(h.uuid);
  if (uuid) return uuid;
  if (x.uuid !== undefined && h.uuid !== x.uuid) return `belongs to another pair (uuid ${h.uuid})`;
  return undefined;
}

const NONE = -1;
const STATE_REMAPPED = 1;
const STATE_PENDING = 2;
const STATE_RETIRED = 3;
const REASON_NONE = 0;
const REASON_LABEL = REASONS.indexOf('label');
const PENDING_REASONS = new Set([REASONS.indexOf('read-error'), REASONS.indexOf('imported')]);

/** A raw u64: -1 for all-ones ("none"), NaN when 2^53 or more, else its value. */
export function rawU64(b: Buffer, off: number): number {
  const lo = b.readUInt32LE(off);
  const hi = b.readUInt32LE(off + 4);
  if (lo === 0xffffffff && hi === 0xffffffff) return NONE;
  if (hi >= 0x200000) return NaN;
  return hi * 0x100000000 + lo;
}

/**
 * The state/reason table (docs/format.md):
 *
 * | state    | main block        | spare block   | reason                      | lost sectors |
 * | remapped | < V               | in the pool   | any but none                | <= B/512     |
 * | pending  | < V               | none          | read-error or imported      | <= B/512     |
 * | retired  | none              | in the pool   | none                        | 0            |
 *
 * and reason `label` only on the remapped entry of the label block V-1.
 */
function entryFieldsProblem(k: number, main: number, spare: number, createdAt: number, reason: number, state: number, lost: number, c: EntryContext): string | undefined {
  if (state < STATE_REMAPPED || state > STATE_RETIRED) return `entry ${k} has unknown state ${state}`;
  if (reason >= REASONS.length) return `entry ${k} has unknown reason ${reason}`;
  if (Number.isNaN(main) || Number.isNaN(spare) || Number.isNaN(createdAt) || createdAt === NONE) return `entry ${k} has a number of 2^53 or more`;
  const what = STATES[state] as string;
  if (state === STATE_RETIRED) {
    if (main !== NONE) return `entry ${k}: a retired entry has main block ${main} (must be none)`;
    if (reason !== REASON_NONE) return `entry ${k}: a retired entry has reason ${REASONS[reason]} (must be none)`;
    if (lost !== 0) return `entry ${k}: a retired entry has lost sectors`;
  } else {
    if (main === NONE || main >= c.mainBlocks) return `entry ${k}: main block ${main} outside the device (0 to ${c.mainBlocks - 1})`;
    if (lost > c.sectorsPerBlock) return `entry ${k}: ${lost} lost sectors in a block of ${c.sectorsPerBlock}`;
    if (state === STATE_PENDING) {
      if (spare !== NONE) return `entry ${k}: a pending entry has spare block ${spare} (must be none)`;
      if (!PENDING_REASONS.has(reason)) return `entry ${k}: a pending entry has reason ${REASONS[reason]}`;
    } else if (reason === REASON_NONE) return `entry ${k}: a remapped entry has reason none`;
    if (reason === REASON_LABEL && (state !== STATE_REMAPPED || main !== c.mainBlocks - 1)) return `entry ${k}: reason label on main block ${main}, not on the label block ${c.mainBlocks - 1}`;
  }
  if (state !== STATE_PENDING) {
    if (spare === NONE || spare >= c.layout.spareBlocks) return `entry ${k}: ${what} spare block ${spare} outside the spare (0 to ${c.layout.spareBlocks - 1})`;
    for (let i = 0; i < c.layout.slots.length; i++) {
      const r = c.layout.slots[i] as { startBlock: number; endBlock: number };
      if (spare >= r.startBlock && spare < r.endBlock) return `entry ${k}: spare block ${spare} lies in metadata slot ${i}`;
    }
  }
  return undefined;
}

interface EntryContext {
  layout: SpareLayout;
  mainBlocks: number;
  sectorsPerBlock: number;
}

/**
 * Checks a table entry by entry, streaming: feed it raw pages (or objects) in
 * order, then call finish(). Holds one bit per spare block (each spare block
 * used once) and one double per main-keyed entry (each main block once).
 */
export class TableChecker {
  private readonly c: EntryContext;
  private readonly spareUsed: Uint8Array;
  /** Main blocks of the entries; 4 bytes each when every main block fits (a million take 4 MB, not 8). */
  private readonly mains: Uint32Array | Float64Array;
  private mainCount = 0;
  private seen = 0;
  private problem: string | undefined;

  /** `entryCount` must already be known to be <= the layout's capacity (headerProblem). */
  constructor(layout: SpareLayout, mainBytes: number, blockSize: number, readonly entryCount: number) {
    if (entryCount > layout.slotEntryCapacity) throw new RangeError('entry count above capacity');
    this.c = { layout, mainBlocks: Math.floor(mainBytes / blockSize), sectorsPerBlock: blockSize / SECTOR_BYTES };
    this.spareUsed = new Uint8Array(Math.ceil(layout.spareBlocks / 8));
    this.mains = this.c.mainBlocks <= 2 ** 32 ? new Uint32Array(entryCount) : new Float64Array(entryCount);
  }

  /** Checks `count` raw entries at the start of `page`; returns the first problem. Adds each valid entry to `print`. */
  checkRaw(page: Buffer, count: number, print?: Fingerprint): string | undefined {
    for (let i = 0; i < count && !this.problem; i++) {
      const off = i * SLOT_ENTRY_BYTES;
      const main = rawU64(page, off);
      const spare = rawU64(page, off + 8);
      const createdAt = rawU64(page, off + 16);
      const reason = page.readUInt8(off + 24);
      const state = page.readUInt8(off + 25);
      const lost = page.readUInt16LE(off + 26);
      this.add(main, spare, createdAt, reason, state, lost);
      if (print && !this.problem) print.addCodes(main, spare, createdAt, lost, state, reason);
    }
    return this.problem;
  }

  checkEntry(e: SlotEntry): string | undefined {
    const reason = REASONS.indexOf(e.reason);
    const state = STATES.indexOf(e.state);
    const num = (n: number): number => (n === NONE || safe(n) ? n : NaN);
    this.add(num(e.mainBlock), num(e.spareBlock), num(e.createdAt), reason < 0 ? 255 : reason, state <= 0 ? 0 : state, e.lostSectors);
    return this.problem;
  }

  private add(main: number, spare: number, createdAt: number, reason: number, state: number, lost: number): void {
    const k = this.seen++;
    if (k >= this.entryCount) {
      this.problem = `more entries than the count ${this.entryCount}`;
      return;
    }
    const bad = entryFieldsProblem(k, main, spare, createdAt, reason, state, lost, this.c);
    if (bad) {
      this.problem = bad;
      return;
    }
    if (spare !== NONE) {
      const bit = 1 << spare % 8;
      const byte = Math.floor(spare / 8);
      if ((this.spareUsed[byte] as number) & bit) {
        this.problem = `entry ${k}: spare block ${spare} is used twice`;
        return;
      }
      this.spareUsed[byte] = (this.spareUsed[byte] as number) | bit;
    }
    if (state !== STATE_RETIRED) this.mains[this.mainCount++] = main;
  }

  /** The problem found, or the duplicate-main check once every entry is in. */
  finish(): string | undefined {
    if (this.problem) return this.problem;
    if (this.seen !== this.entryCount) return `${this.seen} entries, but the count says ${this.entryCount}`;
    const mains = this.mains.subarray(0, this.mainCount).sort();
    for (let i = 1; i < mains.length; i++) {
      if (mains[i] === mains[i - 1]) return `main block ${mains[i]} has two entries`;
    }
    return undefined;
  }
}

/** Checks a whole table of objects (database rows, imports): undefined when valid. */
export function tableProblem(entries: readonly SlotEntry[], layout: SpareLayout, mainBytes: number, blockSize: number): string | undefined {
  if (entries.length > layout.slotEntryCapacity) return `${entries.length} entries exceed the capacity ${layout.slotEntryCapacity}`;
  const checker = new TableChecker(layout, mainBytes, blockSize, entries.length);
  for (const e of entries) if (checker.checkEntry(e)) break;
  return checker.finish();
}

/** The main label's rules (docs/format.md, "Main label"): name and UUID as in slots, sane sizes. */
export function labelProblem(l: { uuid: string; name: string; blockSize: number; mainBytes: number; labelBlock: number; createdAt: number }): string | undefined {
  const bs = validateBlockSize(l.blockSize);
  if (bs) return bs;
  if (!safe(l.mainBytes) || l.mainBytes < l.blockSize) return `main size ${l.mainBytes} is out of range`;
  if (l.labelBlock !== Math.floor(l.mainBytes / l.blockSize) - 1) return `label block ${l.labelBlock} is not the last block`;
  if (!safe(l.createdAt)) return 'time is out of range';
  return pairNameProblem(l.name) ?? uuidProblem(l.uuid);
}
