/**
 * An import with the table read off the serving thread (hot-plug, issue 13):
 * the table is used only while the slots still carry the seal it was read
 * under; a pair's open uses it without reading the slots only when every copy
 * held it and nothing changed since; otherwise both read the slots again, and
 * what they adopt is what is on the spare now.
 */
import * as path from 'path';
import { DeviceLock } from '../../lib/block/device-lock.js';
import { FileDevice } from '../../lib/block/file-device.js';
import { importPair, RepairElsewhereError } from '../../lib/discovery/importer.js';
import { readTableOf, type TableRead } from '../../lib/discovery/probe-worker.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import type { AdoptedTable } from '../../lib/meta/locate.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { openPair, openPairSteps } from '../../lib/pair/pair.js';
import { runNow } from '../../lib/discovery/steps.js';
import type { Store } from '../../lib/store/db.js';
import { poolBlockAt } from '../helpers/pool.js';
import { initPair, scratchStores, sparseFile } from '../helpers/scratch-stores.js';

const MAIN_BYTES = 64 * 1048576;
const SPARE_BYTES = 4 * 1048576;

describe('import with a table read in the worker', () => {
  const stores = scratchStores('remapfs-import-table-');
  const freshStore = (): Store => stores.fresh();
  let main: string;
  let spare: string;

  /** Writes a table of `count` remaps at the next sequence into the slots `only` (all by default); returns its sequence. */
  function writeTable(count: number, only?: number[]): number {
    const dev = FileDevice.open(spare, { mode: 'buffered' });
    try {
      const old = locateMetadata(dev)?.state as MetaState;
      const label = old.entries.filter((e) => e.reason === 'label');
      const used = new Set(label.map((e) => e.spareBlock));
      const entries: SlotEntry[] = [...label];
      for (let k = 0; entries.length < label.length + count; k++) {
        const b = poolBlockAt(old.layout, k);
        if (!used.has(b)) entries.push({ mainBlock: 100 + k, spareBlock: b, createdAt: 1700000000000 + k, reason: 'manual', state: 'remapped', lostSectors: 0 });
      }
      const next = new MetaState(old.identity, old.layout, old.sequence + 1, entries);
      expect(new SlotSet(dev, old.layout).writeAll(next, only)).toEqual([]);
      return next.sequence;
    } finally {
      dev.close();
    }
  }

  function tableOf(read: TableRead): AdoptedTable {
    if (!('table' in read)) throw new Error(`no table: ${read.rejected.join('; ')}`);
    return read.table;
  }

  beforeEach(() => {
    const dir = stores.dir();
    main = sparseFile(path.join(dir, 'main.img'), MAIN_BYTES);
    spare = sparseFile(path.join(dir, 'spare.img'), SPARE_BYTES);
    expect(initPair(freshStore(), 'p', main, spare).labelError).toBeUndefined();
  });

  it('uses the table while the seal holds, and the open takes it without reconciling', () => {
    const seq = writeTable(3);
    const read = readTableOf(spare);
    const store = freshStore();
    const r = importPair(store, main, spare, { table: read });
    expect(r.adopted).toBe(tableOf(read));
    expect(r.repaired).toEqual([]);
    expect(store.remaps.counts(r.pair.id)).toMatchObject({ remapped: 3, label: 1 });
    expect(store.pairs.metaSeq(r.pair.id)).toBe(seq);
    const rt = openPair(store, r.pair, { mode: 'buffered', ...(r.adopted ? { adopted: r.adopted } : {}) });
    try {
      expect(rt.opened.slots).toBe(tableOf(read).reports);
      expect(rt.opened).toMatchObject({ source: 'slots', sequence: seq, consistent: true, repaired: [] });
      const manual = rt.opened.state.entries.filter((e) => e.reason === 'manual');
      expect(manual).toHaveLength(3);
      for (const e of manual) expect(rt.index.spareBlockOf(e.mainBlock)).toBe(e.spareBlock);
    } finally {
      rt.close();
    }
  });

  it('reads the slots again when they changed after the worker read them', () => {
    writeTable(3);
    const read = readTableOf(spare);
    const seq = writeTable(5);
    const store = freshStore();
    const r = importPair(store, main, spare, { table: read });
    expect(r.adopted).toBeUndefined();
    expect(store.remaps.counts(r.pair.id)).toMatchObject({ remapped: 5 });
    expect(store.pairs.metaSeq(r.pair.id)).toBe(seq);
  });

  it("the open reconciles when the slots changed between the import and the open", () => {
    writeTable(3);
    const read = readTableOf(spare);
    const store = freshStore();
    const r = importPair(store, main, spare, { table: read });
    expect(r.adopted).toBeDefined();
    const seq = writeTable(6);
    const rt = openPair(store, r.pair, { mode: 'buffered', ...(r.adopted ? { adopted: r.adopted } : {}) });
    try {
      expect(rt.opened.slots).not.toBe(tableOf(read).reports);
      expect(rt.opened.sequence).toBe(seq);
      expect(rt.opened.repaired).toEqual([expect.stringMatching(/^database restored from slot/) as unknown]);
      expect(store.remaps.counts(r.pair.id)).toMatchObject({ remapped: 6 });
    } finally {
      rt.close();
    }
  });

  it('repairs as usual (and hands nothing on) when a copy did not hold the table', () => {
    writeTable(3);
    writeTable(4, [0, 1, 2, 3]);
    const read = readTableOf(spare);
    expect(tableOf(read).reports[4]?.matches).toBe(false);
    const store = freshStore();
    const r = importPair(store, main, spare, { table: read });
    expect(r.adopted).toBeUndefined();
    expect(r.repaired).toEqual([expect.stringMatching(/^slot 4 rewritten \(stale/) as unknown]);
    expect(store.remaps.counts(r.pair.id)).toMatchObject({ remapped: 4 });
  });

  it('refuses, changing nothing, a repair of more entries than maxRepairEntries (hot-plug leaves it to `remapfs import`)', () => {
    writeTable(3);
    writeTable(4, [0, 1, 2, 3]);
    const read = readTableOf(spare);
    const entries = tableOf(read).header.entryCount;
    const store = freshStore();
    const refused = () => importPair(store, main, spare, { table: read, maxRepairEntries: entries - 1 });
    expect(refused).toThrow(RepairElsewhereError);
    expect(refused).toThrow(/^import \S+: pair p's metadata copies disagree, and the repair of its \d+ entries would stall every served pair \(run `remapfs import --spare \S+ --main \S+` to import and repair it/);
    expect(store.pairs.list()).toEqual([]);
    expect(store.imports.unfinished()).toEqual([]);
    expect(tableOf(readTableOf(spare)).reports[4]?.matches).toBe(false); // the slots are as they were
    // Up to the limit, it is repaired as usual.
    const r = importPair(store, main, spare, { table: read, maxRepairEntries: entries });
    expect(r.repaired).toEqual([expect.stringMatching(/^slot 4 rewritten \(stale/) as unknown]);
  });

  it('an open in steps closed before its end releases the devices and their lock', () => {
    writeTable(3);
    const store = freshStore();
    const r = importPair(store, main, spare, { table: readTableOf(spare) });
    const steps = openPairSteps(store, r.pair, { mode: 'buffered', ...(r.adopted ? { adopted: r.adopted } : {}) });
    expect(steps.next().value).toBe('reconcile');
    expect(() => DeviceLock.acquire([main, spare], { op: 'test', object: 'p', waitMs: 0 })).toThrow(/in use by this process/);
    steps.return(undefined as never);
    DeviceLock.acquire([main, spare], { op: 'test', object: 'p', waitMs: 0 }).release();
    // And run to its end, the same open serves the table.
    const rt = runNow(openPairSteps(store, r.pair, { mode: 'buffered' }));
    try {
      expect(rt.index.remappedCount).toBe(4);
    } finally {
      rt.close();
    }
  });

  it('a worker that found no table is believed: the import fails with its reasons, without reading the spare here', () => {
    const store = freshStore();
    expect(() => importPair(store, main, spare, { table: { rejected: ['slot 0: bad magic (not a remapfs metadata slot)'] } })).toThrow(/no valid remapfs metadata slot found \(1 refused; slot 0: bad magic/);
    expect(store.pairs.list()).toEqual([]);
  });
});
