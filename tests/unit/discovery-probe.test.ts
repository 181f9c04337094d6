/**
 * Bounded discovery on real sparse files: headers first, a table read only for
 * a UUID that could matter (asked for, or carried by a main label among the
 * candidates), read once and then answered from the cache until the candidate
 * changes; the fingerprint and valid-copy count agree with locateMetadata; and
 * discoverInBackground does the probing in a worker thread while this thread's
 * event loop keeps turning.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { match } from '../helpers/match.js';
import { FileDevice } from '../../lib/block/file-device.js';
import { discoverInBackground, stopBackgroundDiscovery } from '../../lib/discovery/background.js';
import { newProbeStats, ProbeCache, probeCandidates } from '../../lib/discovery/probe.js';
import { encodeLabel, labelBlockOf } from '../../lib/format/label-codec.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { spareLayout } from '../../lib/format/layout.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { stateFingerprint } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { Store } from '../../lib/store/db.js';
import { poolBlockAt } from '../helpers/pool.js';

const BLOCK = 4096;
const SPARE_BYTES = 4 * 1024 * 1024 * 1024;
const MAIN_BYTES = 64 * 1024 * 1024 * 1024;
const ENTRIES = 300_000;

/** A sparse 4 GiB spare whose five slots hold a valid table of `count` entries. */
function bigSpare(file: string, count: number, uuid = crypto.randomUUID()): { uuid: string; state: MetaState } {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, SPARE_BYTES);
  const layout = spareLayout(SPARE_BYTES, BLOCK);
  const entries: SlotEntry[] = [];
  for (let i = 0; i < count; i++) entries.push({ mainBlock: 3 * i, spareBlock: poolBlockAt(layout, i), createdAt: 1700000000000 + i, reason: 'write-error', state: 'remapped', lostSectors: 0 });
  const state = new MetaState({ uuid, name: 'big', blockSize: BLOCK, mainBytes: MAIN_BYTES, spareBytes: SPARE_BYTES }, layout, 5, entries);
  const dev = FileDevice.open(file, { mode: 'buffered' });
  try {
    expect(new SlotSet(dev, layout).writeAll(state)).toEqual([]);
  } finally {
    dev.close();
  }
  return { uuid, state };
}

describe('bounded discovery', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-probe-'));
  afterAll(async () => {
    await stopBackgroundDiscovery();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads headers only for a UUID nobody asked for, the table once for one asked for, and again only after a change', () => {
    const file = path.join(dir, 'spare.img');
    const { uuid, state } = bigSpare(file, ENTRIES);
    const cache = new ProbeCache();
    const stats = newProbeStats();

    const [headersOnly] = probeCandidates([file], { uuids: [] }, cache, stats);
    expect(headersOnly?.spare).toMatchObject({ uuid, sequence: 5, validSlots: 5, tableChecked: false });
    expect(stats.tableReads).toBe(0);

    const [full] = probeCandidates([file], { uuids: [uuid] }, cache, stats);
    const dev = FileDevice.open(file, { readOnly: true, mode: 'buffered' });
    let located;
    try {
      located = locateMetadata(dev);
    } finally {
      dev.close();
    }
    expect(full?.spare).toMatchObject({ uuid, sequence: 5, validSlots: 5, tableChecked: true, tablePrint: stateFingerprint(located?.state as MetaState) });
    expect(stats.entriesRead).toBe(ENTRIES);
    const readsAfterFirst = stats.tableReads;
    expect(readsAfterFirst).toBe(5);

    // Unchanged: answered from the cache, twice, whatever is asked.
    probeCandidates([file], { uuids: [uuid] }, cache, stats);
    probeCandidates([file], { uuids: [] }, cache, stats);
    expect(stats.tableReads).toBe(readsAfterFirst);
    expect(stats.cacheHits).toBe(2);

    // A metadata update (new sequence, new header CRCs) is seen and read again.
    const page = state.upsert({ mainBlock: 1, spareBlock: poolBlockAt(state.layout, ENTRIES + 1), createdAt: 1800000000000, reason: 'manual', state: 'remapped', lostSectors: 0 });
    state.sequence++;
    const w = FileDevice.open(file, { mode: 'buffered' });
    try {
      expect(new SlotSet(w, state.layout).writeUpdate(state, [page])).toEqual([]);
    } finally {
      w.close();
    }
    const [updated] = probeCandidates([file], { uuids: [uuid] }, cache, stats);
    expect(updated?.spare).toMatchObject({ sequence: 6, validSlots: 5, tablePrint: stateFingerprint(state) });
    expect(stats.tableReads).toBe(readsAfterFirst + 5);
  });

  it('a damaged copy is not counted, and a main label among the candidates makes the table wanted', () => {
    const file = path.join(dir, 'spare2.img');
    const { uuid, state } = bigSpare(file, 2000);
    // One entry page of slot 3 overwritten: its page CRC no longer matches.
    const layout = state.layout;
    const fd = fs.openSync(file, 'r+');
    const slots = new SlotSet(FileDevice.open(file, { readOnly: true, mode: 'buffered' }), layout);
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, slots.slotOffset(3) + slots.pagesOffset + 4096);
    fs.closeSync(fd);
    slots.spare.close();
    const main = path.join(dir, 'main.img');
    fs.writeFileSync(main, '');
    fs.truncateSync(main, MAIN_BYTES);
    const labelBlock = labelBlockOf(MAIN_BYTES, BLOCK);
    const mfd = fs.openSync(main, 'r+');
    fs.writeSync(mfd, encodeLabel({ uuid, name: 'big', blockSize: BLOCK, mainBytes: MAIN_BYTES, labelBlock, createdAt: Date.now() }), 0, 512, labelBlock * BLOCK);
    fs.closeSync(mfd);

    const stats = newProbeStats();
    const found = probeCandidates([file, main], { uuids: [] }, new ProbeCache(), stats);
    expect(found.find((f) => f.path === main)?.main?.label.uuid).toBe(uuid);
    expect(found.find((f) => f.path === file)?.spare).toMatchObject({ uuid, tableChecked: true, validSlots: 4, tablePrint: stateFingerprint(state) });
    expect(stats.tableReads).toBe(5);
  });

  it('discoverInBackground probes in a worker: this thread turns its event loop while the table is read, and an unchanged candidate is not read again', async () => {
    const watch = fs.mkdtempSync(path.join(dir, 'watch-'));
    const { uuid } = bigSpare(path.join(watch, 'spare.img'), 1_000_000);
    const store = Store.open(path.join(dir, 'bg.db'), { create: true });
    store.pairs.insert({ name: 'big', uuid, mainPath: path.join(dir, 'gone-main.img'), sparePath: path.join(watch, 'spare.img'), blockSize: BLOCK, mainBytes: MAIN_BYTES, spareBytes: SPARE_BYTES, createdAt: Date.now(), metaSeq: 1, mainLabel: false, mainHwid: null, spareHwid: null });
    const lines: string[] = [];
    try {
      let turns = 0;
      let running = true;
      const spin = (): void => {
        turns++;
        if (running) setImmediate(spin);
      };
      setImmediate(spin);
      const report = await discoverInBackground([watch], store, { blockDevices: false, log: (l) => lines.push(l), requestsServed: () => turns });
      running = false;
      expect(report.pairs).toEqual([match.object({ uuid, status: 'spare-only', spare: match.object({ tableChecked: true, validSlots: 5 }) })]);
      // The event loop turned while the worker read the table: probing on this thread would have allowed none.
      const first = /discovery run 1: .* 5 slot table\(s\) read \(1000000 entries\) in the worker; table reads so far 5; (\d+) request\(s\) served meanwhile/.exec(lines.join('\n'));
      expect(first).not.toBeNull();
      expect(Number(first?.[1])).toBeGreaterThan(0);

      // Three more runs (one asked for while another is in flight): nothing read again.
      process.env.REMAPFS_DEBUG = '1';
      const again = await Promise.all([discoverInBackground([watch], store, { blockDevices: false, log: (l) => lines.push(l) }), discoverInBackground([watch], store, { blockDevices: false, log: (l) => lines.push(l) })]);
      await discoverInBackground([watch], store, { blockDevices: false, log: (l) => lines.push(l) });
      expect(again.map((r) => r.pairs[0]?.spare?.tableChecked)).toEqual([true, true]);
      const later = lines.filter((l) => /discovery run [234]:/.test(l));
      expect(later).toHaveLength(3);
      for (const l of later) expect(l).toMatch(/1 unchanged, 0 slot table\(s\) read \(0 entries\) in the worker; table reads so far 5;/);
    } finally {
      delete process.env.REMAPFS_DEBUG;
      store.close();
    }
  });
});
