/**
 * Finding metadata slots on a spare whose pair is unknown (import, discovery,
 * init's overwrite check). Slot 0 sits at byte 0 whatever the block size; if it
 * is damaged, every block size is tried for slots 1 to 4.
 */
import type { BlockDevice } from '../block/device.js';
import { isDiskError } from '../block/disk-error.js';
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, SLOT_COUNT, SLOT_HEADER_BYTES, type SpareLayout, spareLayout, validateBlockSize } from '../format/layout.js';
import { decodeHeaderFields, type SlotHeader } from '../format/slot-codec.js';
import { type SlotReport, SlotSet } from './slots.js';
import { MetaState } from './state.js';

export interface FoundMetadata {
  slots: SlotSet;
  reports: SlotReport[];
  /** The adopted copy: the valid copy with the highest sequence number. */
  newest: SlotReport & { header: SlotHeader };
  /** Its table (entry pages, reserved bytes zeroed). */
  state: MetaState;
}

function headerAt(spare: BlockDevice, byteOffset: number): SlotHeader | undefined {
  const buf = Buffer.alloc(SLOT_HEADER_BYTES);
  try {
    spare.read(buf, byteOffset);
  } catch (err) {
    // An unreadable header is no header; anything but a disk error is a bug.
    if (!isDiskError(err)) throw err;
    return undefined;
  }
  const r = decodeHeaderFields(buf);
  return r.ok ? r.header : undefined;
}

/**
 * Block sizes to try, in order: the one in slot 0's header if it decodes
 * (slot 0 starts at byte 0 whatever B is), then every B from 512 to 65536
 * for which a slot 1-4 header decodes at start(i) and names that B and i.
 */
export function candidateBlockSizes(spare: BlockDevice): number[] {
  const first = headerAt(spare, 0);
  const sizes: number[] = first && validateBlockSize(first.blockSize) === undefined ? [first.blockSize] : [];
  for (let b = MIN_BLOCK_BYTES; b <= MAX_BLOCK_BYTES; b *= 2) {
    if (sizes.includes(b)) continue;
    const layout = spareLayout(spare.sizeBytes, b);
    for (let i = 1; i < layout.slots.length; i++) {
      const h = headerAt(spare, (layout.slots[i]?.startBlock ?? 0) * b);
      if (h && h.blockSize === b && h.slotIndex === i) {
        sizes.push(b);
        break;
      }
    }
  }
  return sizes;
}

/**
 * The newest valid remapfs metadata on `spare`, with all five slot reports;
 * undefined when there is none. For each candidate block size, the copies
 * are tried by sequence number, highest first, each with every rule of
 * format/validate.ts (S is the spare's real size); the first that passes is
 * adopted, and the others are compared with it. Why each refused copy was
 * refused goes to `rejected` ("slot i: reason").
 */
export function locateMetadata(spare: BlockDevice, rejected: string[] = []): FoundMetadata | undefined {
  for (const blockSize of candidateBlockSizes(spare)) {
    const layout = spareLayout(spare.sizeBytes, blockSize);
    if (layout.slots.length !== SLOT_COUNT) continue;
    const slots = new SlotSet(spare, layout);
    const peeked = Array.from({ length: SLOT_COUNT }, (_, i) => slots.peekHeader(i));
    const order = [...peeked.keys()].filter((i) => peeked[i]).sort((a, b) => (peeked[b]?.sequence ?? 0) - (peeked[a]?.sequence ?? 0) || a - b);
    for (const i of order) {
      const r = slots.read(i, {}, 'pages');
      if (!r.valid || !r.header || !r.pages) {
        rejected.push(`slot ${i}: ${r.reason}`);
        continue;
      }
      const h = r.header;
      const state = MetaState.fromPages({ uuid: h.uuid, name: h.name, blockSize: h.blockSize, mainBytes: h.mainBytes, spareBytes: h.spareBytes }, layout, h.sequence, h.entryCount, r.pages);
      const expect = { uuid: h.uuid, mainBytes: h.mainBytes };
      const reports = [...peeked.keys()].map((k): SlotReport => {
        if (k === i) {
          const { pages: _pages, ...rest } = r;
          return { ...rest, matches: true };
        }
        return slots.compare(k, state, expect);
      });
      return { slots, reports, newest: reports[i] as FoundMetadata['newest'], state };
    }
  }
  return undefined;
}

/**
 * A table adopted off the serving thread (the discovery worker), handed over
 * with what it was read from: the adopted copy's header and index, the
 * reports of all five copies (compared with it), its canonical entry pages
 * (transferable), the seal of the slots when reading began, and the order of
 * its history events (MetaState.historyOrder, transferable: sorting a million
 * entries is not for the serving thread).
 */
export interface AdoptedTable {
  header: SlotHeader;
  sourceSlot: number;
  reports: SlotReport[];
  pages: Buffer;
  seal: Buffer;
  historyOrder: Float64Array;
}

/** Bytes per slot in a seal: a flag (1: the header sector was read) and the sector. */
const SEAL_SLOT_BYTES = 1 + SLOT_HEADER_BYTES;

/**
 * The five header sectors of `layout` on `spare`, as they are now. Every write
 * of a copy rewrites its header (sequence, time, CRC of the page CRC table),
 * so an equal seal later means no copy was written in between.
 */
export function slotSeal(spare: BlockDevice, layout: SpareLayout): Buffer {
  const seal = Buffer.alloc(SLOT_COUNT * SEAL_SLOT_BYTES);
  for (let i = 0; i < SLOT_COUNT; i++) {
    const byteOffset = (layout.slots[i]?.startBlock ?? 0) * layout.blockSize;
    if (byteOffset + SLOT_HEADER_BYTES > spare.sizeBytes) continue;
    const at = i * SEAL_SLOT_BYTES;
    try {
      spare.read(seal.subarray(at + 1, at + SEAL_SLOT_BYTES), byteOffset);
      seal[at] = 1;
    } catch (err) {
      // An unreadable header is part of the seal (flag 0): reading it later must fail too.
      if (!isDiskError(err)) throw err;
      seal.fill(0, at, at + SEAL_SLOT_BYTES);
    }
  }
  return seal;
}

/**
 * locateMetadata, sealed: the seal is taken before the table is read, so a
 * later equal seal means the table still holds. Returns the table in a form
 * that crosses threads (pages as their own ArrayBuffer), or why none was found.
 */
export function readAdoptedTable(spare: BlockDevice): { table: AdoptedTable } | { rejected: string[] } {
  const seals = new Map(candidateBlockSizes(spare).map((b) => [b, slotSeal(spare, spareLayout(spare.sizeBytes, b))]));
  const rejected: string[] = [];
  const found = locateMetadata(spare, rejected);
  if (!found) return { rejected };
  // A block size that was no candidate before the read: the slots changed meanwhile, and the seal cannot hold.
  const seal = seals.get(found.newest.header.blockSize) ?? Buffer.alloc(0);
  const pages = found.state.pagesForTransfer();
  const historyOrder = found.state.historyOrder();
  return { table: { header: found.newest.header, sourceSlot: found.newest.index, reports: found.reports.map(({ pages: _p, entries: _e, ...r }) => r), pages, seal, historyOrder } };
}

/** The table of `table`, if the slots still carry its seal (read now, under the caller's lock). */
export function stillSealed(spare: BlockDevice, table: AdoptedTable): boolean {
  const layout = spareLayout(spare.sizeBytes, table.header.blockSize);
  return table.seal.length > 0 && slotSeal(spare, layout).equals(table.seal);
}

/** Whether every copy of an adopted table holds it, byte for byte as remapfs writes it: nothing to repair. */
export function allCopiesCurrent(table: AdoptedTable): boolean {
  return table.reports.length === SLOT_COUNT && table.reports.every((r) => r.valid && r.matches && r.canonical !== false);
}

export function findForeignMetadata(spare: BlockDevice): SlotHeader | undefined {
  return locateMetadata(spare)?.newest.header;
}
