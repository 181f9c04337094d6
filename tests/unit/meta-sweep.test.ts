/**
 * "Fail the Nth write" over the metadata writers: a crash (the device stops
 * accepting writes) at every write of an update, with and without a torn
 * write, must leave a table that is the old one or the new one, never a mix,
 * with at least four valid slots, and opening must never fail.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FaultDevice } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { MetaJournal } from '../../lib/meta/journal.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { fingerprint, identityOf, reconcile } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { spareLayout } from '../../lib/format/layout.js';
import { type PairRecord, Store } from '../../lib/store/db.js';
import { poolBlockAt } from '../helpers/pool.js';

const BLOCK = 4096;
const SPARE_BYTES = 2 * 1024 * 1024;

const LAYOUT = spareLayout(SPARE_BYTES, BLOCK);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-sweep-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let dbCounter = 0;
interface World {
  store: Store;
  pair: PairRecord;
  memory: MemoryDevice;
  oldPrint: string;
}

/** A pair with `existing` remaps, its slots written at sequence 5. */
function makeWorld(existing: number): World {
  const store = Store.open(path.join(dir, `sweep-${dbCounter++}.db`), { create: true });
  const pair = store.pairs.insert({
    name: 'sweep',
    uuid: '6a0f3c1e-8b2d-4e5f-9a1b-2c3d4e5f6a7b',
    mainPath: '/dev/null',
    sparePath: '/dev/zero',
    blockSize: BLOCK,
    mainBytes: 64 * 1024 * 1024,
    spareBytes: SPARE_BYTES,
    createdAt: 1,
    metaSeq: 5,
  });
  const entries: SlotEntry[] = [];
  for (let i = 0; i < existing; i++) entries.push({ mainBlock: 10 * i, spareBlock: poolBlockAt(LAYOUT, i), createdAt: 1000 + i, reason: 'manual', state: 'remapped', lostSectors: 0 });
  store.transaction(() => {
    for (const e of entries) store.remaps.put(pair.id, { mainBlock: e.mainBlock, spareBlock: e.spareBlock, reason: 'manual', state: 'remapped', lostSectors: 0, createdAt: e.createdAt });
  });
  const memory = new MemoryDevice('spare', SPARE_BYTES);
  const layout = spareLayout(SPARE_BYTES, BLOCK);
  expect(new SlotSet(memory, layout).writeAll(new MetaState(identityOf(pair), layout, 5, entries))).toEqual([]);
  return { store, pair, memory, oldPrint: fingerprint(entries) };
}

const NEW_ENTRY: SlotEntry = { mainBlock: 9999, spareBlock: poolBlockAt(LAYOUT, 450), createdAt: 5000, reason: 'write-error', state: 'remapped', lostSectors: 0 };

/** Runs one journal commit on a device that crashes at write `atWrite`; returns the number of writes an update makes when it does not crash. */
function commitWithCrash(w: World, atWrite: number, tornBytes: number): number {
  const fault = new FaultDevice(w.memory);
  if (atWrite > 0) fault.crash = { atWrite, tornBytes };
  const layout = spareLayout(SPARE_BYTES, BLOCK);
  const slots = new SlotSet(fault, layout);
  const opened = reconcile(w.store, w.pair, slots, { write: false });
  const journal = new MetaJournal(w.store, w.pair, opened.state, slots);
  try {
    journal.commitRemap({ mainBlock: NEW_ENTRY.mainBlock, spareBlock: NEW_ENTRY.spareBlock, reason: 'write-error', state: 'remapped', lostSectors: 0, createdAt: NEW_ENTRY.createdAt });
  } catch {
    // all slots failed after the crash: the journal says so; the database holds the change
  }
  return fault.writeCount;
}

describe('crash at the Nth metadata write', () => {
  const writesPerUpdate = commitWithCrash(makeWorld(40), 0, 0);

  it('an update of one entry is 3 writes per slot', () => {
    expect(writesPerUpdate).toBe(15);
  });

  const cases: Array<[number, number]> = [];
  for (let n = 1; n <= writesPerUpdate; n++) for (const torn of [0, 100, 511, 1000]) cases.push([n, torn]);

  it.each(cases)('crash at write %i with %i bytes torn: slots hold old or new, never a mix', (n, torn) => {
    const w = makeWorld(40);
    commitWithCrash(w, n, torn);
    const newPrint = fingerprint([...Array.from({ length: 40 }, (_, i) => ({ mainBlock: 10 * i, spareBlock: poolBlockAt(LAYOUT, i), createdAt: 1000 + i, reason: 'manual' as const, state: 'remapped' as const, lostSectors: 0 })), NEW_ENTRY]);
    const layout = spareLayout(SPARE_BYTES, BLOCK);
    const reports = new SlotSet(w.memory, layout).readAll({ uuid: w.pair.uuid });
    const valid = reports.filter((r) => r.valid);
    expect(valid.length).toBeGreaterThanOrEqual(4);
    for (const r of valid) expect([w.oldPrint, newPrint]).toContain(fingerprint(r.entries ?? []));

    // Without the database (import after loss): the newest valid slot is old or new.
    const found = locateMetadata(w.memory);
    expect(found).toBeDefined();
    expect([w.oldPrint, newPrint]).toContain(fingerprint(found?.state.entries ?? []));

    // With the database, which committed first: opening yields the new table and repairs every slot.
    const opened = reconcile(w.store, w.pair, new SlotSet(w.memory, layout), { write: true });
    expect(fingerprint(opened.state.entries)).toBe(newPrint);
    const after = new SlotSet(w.memory, layout).readAll({ uuid: w.pair.uuid });
    expect(after.every((r) => r.valid && r.sequence === opened.sequence && fingerprint(r.entries ?? []) === newPrint)).toBe(true);
    expect(reconcile(w.store, w.pair, new SlotSet(w.memory, layout), { write: false }).consistent).toBe(true);
    w.store.close();
  });

  it.each([1, 2, 3, 7, 20, 41])('a crash at write %i of a full repair leaves a valid slot and a consistent reopen', (n) => {
    const w = makeWorld(400);
    const layout = spareLayout(SPARE_BYTES, BLOCK);
    // Damage slots 0, 1 and 2, then repair through a device that crashes.
    for (const i of [0, 1, 2]) w.memory.data.fill(0xee, new SlotSet(w.memory, layout).slotOffset(i), new SlotSet(w.memory, layout).slotOffset(i) + 4096);
    const fault = new FaultDevice(w.memory);
    fault.crash = { atWrite: n, tornBytes: 200 };
    try {
      reconcile(w.store, w.pair, new SlotSet(fault, layout), { write: true });
    } catch {
      // every remaining write failed
    }
    const reports = new SlotSet(w.memory, layout).readAll({ uuid: w.pair.uuid });
    expect(reports.filter((r) => r.valid).length).toBeGreaterThanOrEqual(2);
    for (const r of reports.filter((x) => x.valid)) expect(fingerprint(r.entries ?? [])).toBe(w.oldPrint);
    const reopened = reconcile(w.store, w.pair, new SlotSet(w.memory, layout), { write: true });
    expect(fingerprint(reopened.state.entries)).toBe(w.oldPrint);
    expect(reconcile(w.store, w.pair, new SlotSet(w.memory, layout), { write: false }).consistent).toBe(true);
    w.store.close();
  });

  it('with the database lost and one slot torn mid-update, the newest valid slot wins', () => {
    const w = makeWorld(10);
    commitWithCrash(w, 8, 300); // slot 2 torn: slots 0-1 new, 3-4 old
    const found = locateMetadata(w.memory);
    expect(found?.newest.sequence).toBe(6);
    expect(found?.state.entries?.some((e) => e.mainBlock === NEW_ENTRY.mainBlock)).toBe(true);
    expect(found?.reports.filter((r) => r.valid).length).toBe(4);
    w.store.close();
  });
});
