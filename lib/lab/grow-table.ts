/**
 * Growing a pair's slot table in place (tests and scripts that need a huge
 * table without a million remaps): `count` remapped entries are added after
 * the ones the table has, each to the next free main block and pool block, at
 * the next sequence number, in all five slots.
 */
import { FileDevice } from '../block/file-device.js';
import type { SlotEntry } from '../format/slot-codec.js';
import { locateMetadata } from '../meta/locate.js';
import { SlotSet } from '../meta/slots.js';
import { MetaState } from '../meta/state.js';

/** Adds `count` remapped entries to the table on `spare`; returns the table's new entry count. */
export function growTable(spare: string, count: number): number {
  const dev = FileDevice.open(spare, { mode: 'buffered' });
  try {
    const found = locateMetadata(dev);
    if (!found) throw new Error(`no metadata on ${spare}`);
    const old = found.state;
    const existing = old.entries;
    const usedMain = new Set(existing.map((e) => e.mainBlock));
    const usedSpare = new Set(existing.map((e) => e.spareBlock));
    const entries: SlotEntry[] = [...existing];
    let main = 0;
    for (const r of old.layout.pool) {
      for (let b = r.startBlock; b < r.endBlock && entries.length < existing.length + count; b++) {
        if (usedSpare.has(b)) continue;
        while (usedMain.has(main)) main++;
        entries.push({ mainBlock: main++, spareBlock: b, createdAt: 1700000000000 + b, reason: 'write-error', state: 'remapped', lostSectors: 0 });
      }
    }
    if (entries.length !== existing.length + count) throw new Error('the pool is too small for the table');
    const grown = new MetaState(old.identity, old.layout, old.sequence + 1, entries);
    const bad = new SlotSet(dev, old.layout).writeAll(grown);
    if (bad.length) throw new Error(`slot writes failed: ${bad.join(', ')}`);
    return entries.length;
  } finally {
    dev.close();
  }
}
