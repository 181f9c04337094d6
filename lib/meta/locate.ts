/**
 * Finding metadata slots on a spare whose pair is unknown (import, discovery,
 * init's overwrite check). Slot 0 sits at byte 0 whatever the block size; if it
 * is damaged, every block size is tried for slots 1 to 4.
 */
import { BlockDevice } from '../block/device';
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, SLOT_COUNT, SLOT_HEADER_BYTES, spareLayout } from '../remap/layout';
import { decodeHeaderFields, SlotHeader } from './codec';
import { SlotReport, SlotSet } from './slots';

export interface FoundMetadata {
  slots: SlotSet;
  reports: SlotReport[];
  /** The newest valid slot. */
  newest: SlotReport & { header: SlotHeader };
}

function headerAt(spare: BlockDevice, byteOffset: number): SlotHeader | undefined {
  const buf = Buffer.alloc(SLOT_HEADER_BYTES);
  try {
    spare.read(buf, byteOffset);
  } catch {
    return undefined;
  }
  const r = decodeHeaderFields(buf);
  return r.ok ? r.header : undefined;
}

function candidateBlockSizes(spare: BlockDevice): number[] {
  const first = headerAt(spare, 0);
  const sizes: number[] = first ? [first.blockSize] : [];
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

/** The newest valid remapfs metadata on `spare`, with all five slot reports; undefined when there is none. */
export function locateMetadata(spare: BlockDevice): FoundMetadata | undefined {
  for (const blockSize of candidateBlockSizes(spare)) {
    const layout = spareLayout(spare.sizeBytes, blockSize);
    if (layout.slots.length !== SLOT_COUNT) continue;
    const slots = new SlotSet(spare, layout);
    const first = slots.readAll();
    const newestOf = (rs: SlotReport[]) => rs.filter((r) => r.valid).sort((a, b) => (b.sequence ?? 0) - (a.sequence ?? 0))[0];
    const newest = newestOf(first);
    if (!newest?.header) continue;
    const reports = slots.readAll({ uuid: newest.header.uuid });
    return { slots, reports, newest: newest as FoundMetadata['newest'] };
  }
  return undefined;
}

export function findForeignMetadata(spare: BlockDevice): SlotHeader | undefined {
  return locateMetadata(spare)?.newest.header;
}
