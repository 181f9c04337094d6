/**
 * Test helper: writes metadata slots byte by byte, as an attacker or a bug
 * could, with correct CRCs, so that only the semantic rules can refuse them.
 */
import * as fs from 'fs';
import { FileDevice } from '../../lib/block/file-device.js';
import { crc32, encodeEntry, encodeHeaderFields, headerCrc, HEADER_CRC_OFFSET, type SlotEntry, type SlotHeader } from '../../lib/format/slot-codec.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { slotHeaderRegionBytes, SLOT_COUNT, SLOT_ENTRY_BYTES, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, spareLayout } from '../../lib/format/layout.js';

/** The table and header a spare holds now (read with the real code). */
export function currentTable(spareFile: string): { header: SlotHeader; entries: SlotEntry[] } {
  const dev = FileDevice.open(spareFile, { readOnly: true, mode: 'buffered' });
  try {
    const found = locateMetadata(dev);
    if (!found) throw new Error(`no metadata on ${spareFile}`);
    return { header: found.newest.header, entries: found.state.entries };
  } finally {
    dev.close();
  }
}

/** Writes all five slots with `header` (slot index set per slot) and `entries` in this order, duplicates and all. */
export function writeRawSlots(spareFile: string, header: SlotHeader, entries: readonly SlotEntry[]): void {
  const layout = spareLayout(fs.statSync(spareFile).size, header.blockSize);
  const pageCount = Math.ceil(entries.length / 128);
  const pages = Buffer.alloc(Math.max(1, pageCount) * SLOT_PAGE_BYTES);
  entries.forEach((e, k) => encodeEntry(e, pages, k * SLOT_ENTRY_BYTES));
  const table = Buffer.alloc(4 * pageCount);
  for (let p = 0; p < pageCount; p++) table.writeUInt32LE(crc32(pages.subarray(p * SLOT_PAGE_BYTES, (p + 1) * SLOT_PAGE_BYTES)), 4 * p);
  const fd = fs.openSync(spareFile, 'r+');
  try {
    for (let i = 0; i < SLOT_COUNT; i++) {
      const off = (layout.slots[i]?.startBlock ?? 0) * header.blockSize;
      const head = Buffer.alloc(SLOT_HEADER_BYTES);
      encodeHeaderFields({ ...header, slotIndex: i, entryCount: entries.length, pageCount }, head);
      head.writeUInt32LE(headerCrc(head, table), HEADER_CRC_OFFSET);
      fs.writeSync(fd, pages, 0, pageCount * SLOT_PAGE_BYTES, off + slotHeaderRegionBytes(layout.slotEntryCapacity));
      fs.writeSync(fd, table, 0, table.length, off + SLOT_HEADER_BYTES);
      fs.writeSync(fd, head, 0, head.length, off);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
