/**
 * Table fingerprints: the JavaScript hash over slot entries and the SQLite
 * aggregate over the database rows must agree exactly on every table, and a
 * change of any one field, or a swap between entries, must change them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { FINGERPRINT_PRIME } from '../../lib/format/fingerprint.js';
import { databaseEntries, databaseFingerprint, fingerprint, recordOf } from '../../lib/meta/reconcile.js';
import Database from 'better-sqlite3';
import { Store } from '../../lib/store/db.js';

const remap = (mainBlock: number, spareBlock: number, over: Partial<SlotEntry> = {}): SlotEntry => ({
  mainBlock,
  spareBlock,
  createdAt: 1_764_000_000_000 + mainBlock,
  reason: 'manual',
  state: 'remapped',
  lostSectors: 0,
  ...over,
});
const retired = (spareBlock: number, createdAt: number): SlotEntry => ({ mainBlock: -1, spareBlock, createdAt, reason: 'none', state: 'retired', lostSectors: 0 });

const TABLES: Array<[string, SlotEntry[]]> = [
  ['empty', []],
  ['one remap', [remap(0, 5)]],
  ['a pending block (no spare block)', [remap(7, -1, { state: 'pending', reason: 'read-error', lostSectors: 3 })]],
  ['every reason', (['manual', 'write-error', 'read-error', 'weak-read', 'scan-slow', 'imported', 'label'] as const).map((reason, i) => remap(i * 10, 100 + i, { reason }))],
  ['retired spare blocks', [remap(1, 10), retired(11, 5), retired(12, 6)]],
  ['blocks and times above 2^32 and above the prime', [remap(2 ** 40 + 3, FINGERPRINT_PRIME + 1), remap(FINGERPRINT_PRIME, 2 ** 33, { createdAt: 4_102_444_800_000 })]],
  ['a thousand scattered remaps', Array.from({ length: 1000 }, (_, i) => remap(i * 7919, 1000 + i, { lostSectors: i % 9 }))],
];

describe('table fingerprints', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-print-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  function inDatabase(entries: readonly SlotEntry[]): string {
    const store = Store.open(path.join(dir, `t${n++}.db`), { create: true });
    try {
      const pair = store.pairs.insert({ name: 'p', uuid: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/x', sparePath: '/y', blockSize: 4096, mainBytes: 2 ** 53 - 4096, spareBytes: 2 ** 46, createdAt: 1, metaSeq: 1 });
      const remaps = entries.filter((e) => e.state !== 'retired').map(recordOf);
      const gone = entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
      store.transaction(() => store.remaps.replaceTable(pair.id, remaps, gone, 1));
      expect(fingerprint(databaseEntries(store, pair.id))).toBe(fingerprint(entries));
      return databaseFingerprint(store, pair.id);
    } finally {
      store.close();
    }
  }

  it.each(TABLES)('SQLite and JavaScript agree: %s', (_name, entries) => {
    expect(inDatabase(entries)).toBe(fingerprint(entries));
    expect(fingerprint([...entries].reverse())).toBe(fingerprint(entries));
  });

  const base = [remap(10, 100), remap(20, 200, { lostSectors: 1 }), remap(30, -1, { state: 'pending', reason: 'read-error' })];
  it.each<[string, SlotEntry[]]>([
    ['a main block', [remap(11, 100), base[1] as SlotEntry, base[2] as SlotEntry]],
    ['a main block by the prime', [remap(10 + FINGERPRINT_PRIME, 100), base[1] as SlotEntry, base[2] as SlotEntry]],
    ['a spare block', [remap(10, 101), base[1] as SlotEntry, base[2] as SlotEntry]],
    ['spare blocks swapped', [remap(10, 200), remap(20, 100, { lostSectors: 1 }), base[2] as SlotEntry]],
    ['a time', [remap(10, 100, { createdAt: 1 }), base[1] as SlotEntry, base[2] as SlotEntry]],
    ['lost sectors', [base[0] as SlotEntry, remap(20, 200, { lostSectors: 2 }), base[2] as SlotEntry]],
    ['a reason', [remap(10, 100, { reason: 'write-error' }), base[1] as SlotEntry, base[2] as SlotEntry]],
    ['a state', [base[0] as SlotEntry, base[1] as SlotEntry, remap(30, 300, { state: 'remapped', reason: 'read-error' })]],
    ['an entry missing', [base[0] as SlotEntry, base[1] as SlotEntry]],
    ['an entry added', [...base, retired(300, 1)]],
  ])('a change is seen: %s', (_name, changed) => {
    expect(fingerprint(changed)).not.toBe(fingerprint(base));
    expect(inDatabase(changed)).toBe(fingerprint(changed));
  });
});

describe('the fingerprint the database keeps (table_prints, kept by triggers)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-kept-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const UUIDS = ['1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', '2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f'];
  const newPair = (store: Store, i: number) =>
    store.pairs.insert({ name: `p${i}`, uuid: UUIDS[i] as string, mainPath: `/m${i}`, sparePath: `/s${i}`, blockSize: 4096, mainBytes: 2 ** 40, spareBytes: 2 ** 36, createdAt: 1, metaSeq: 1 });
  /** The print from every row, computed by SQLite's aggregate. */
  const fromRows = (store: Store, pairId: number): number[] => store.remaps.rowPrintParts(pairId);

  it('stays equal to the aggregate over the rows through every kind of change', () => {
    const store = Store.open(path.join(dir, 'ops.db'), { create: true });
    try {
      const pairs = [newPair(store, 0), newPair(store, 1)];
      let seed = 12345;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const reasons = ['manual', 'write-error', 'read-error', 'weak-read', 'scan-slow', 'imported'] as const;
      for (let step = 0; step < 400; step++) {
        const pair = pairs[rnd(2)] as (typeof pairs)[number];
        const op = rnd(6);
        const mainBlock = rnd(60) * (rnd(4) === 0 ? FINGERPRINT_PRIME : 1);
        const record = { mainBlock, spareBlock: rnd(5) === 0 ? -1 : 1000 + step, reason: reasons[rnd(reasons.length)] as (typeof reasons)[number], state: 'remapped' as const, lostSectors: rnd(3), createdAt: 1_764_000_000_000 + step };
        if (op === 0 || op === 1) store.transaction(() => store.remaps.put(pair.id, record.spareBlock < 0 ? { ...record, state: 'pending' } : record)); // insert or upsert
        else if (op === 2) store.transaction(() => store.remaps.putRetired(pair.id, 5000 + rnd(40), step)); // insert, or ignored
        else if (op === 3) store.imports.deleteRows(pair.id, 1 + rnd(5));
        else if (op === 4 && rnd(8) === 0) store.transaction(() => store.remaps.replaceTable(pair.id, [recordOf(remap(rnd(9), 9000 + step))], [{ spareBlock: 9500 + step, createdAt: 2 }], step));
        else store.transaction(() => store.remaps.putMany(pair.id, [remap(100 + rnd(9), 20000 + step), remap(200 + rnd(9), 30000 + step, { lostSectors: 1 })].map(recordOf)));
        for (const p of pairs) expect(store.remaps.storedPrintParts(p.id)).toEqual(fromRows(store, p.id));
      }
      // A deleted pair's rows go with it; a new pair (which may reuse the id) starts from zero.
      const gone = pairs[1] as (typeof pairs)[number];
      expect(fromRows(store, gone.id)[0]).toBeGreaterThan(0);
      store.pairs.delete(gone.id);
      expect(store.remaps.storedPrintParts(gone.id)).toBeUndefined();
      const again = newPair(store, 1);
      expect(store.remaps.storedPrintParts(again.id)).toEqual([0, 0, 0, 0, 0, 0, 0]);
      expect(fromRows(store, again.id)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    } finally {
      store.close();
    }
  });

  it('is added, with every pair sums, to a file from before it', () => {
    const file = path.join(dir, 'old.db');
    const store = Store.open(file, { create: true });
    const pair = newPair(store, 0);
    store.transaction(() => store.remaps.replaceTable(pair.id, [remap(1, 11), remap(2 ** 40 + 3, FINGERPRINT_PRIME + 1)].map(recordOf), [{ spareBlock: 99, createdAt: 1 }], 3));
    const expected = fromRows(store, pair.id);
    store.close();
    const raw = new Database(file);
    for (const name of raw.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").pluck().all() as string[]) raw.exec(`DROP TRIGGER ${name}`);
    raw.exec('DROP TABLE table_prints');
    raw.exec('DROP TABLE device_ids'); // a stage after table_prints: a file from before it has neither
    raw.close();
    const reopened = Store.open(file, { create: false });
    try {
      expect(reopened.remaps.storedPrintParts(pair.id)).toEqual(expected);
      reopened.transaction(() => reopened.remaps.put(pair.id, { mainBlock: 5, spareBlock: 55, reason: 'manual', state: 'remapped', lostSectors: 0, createdAt: 7 }));
      expect(reopened.remaps.storedPrintParts(pair.id)).toEqual(fromRows(reopened, pair.id));
    } finally {
      reopened.close();
    }
  });

  it('only confirms agreement: a wrong kept row sends databaseFingerprint back to the rows', () => {
    const file = path.join(dir, 'tampered.db');
    const store = Store.open(file, { create: true });
    try {
      const pair = newPair(store, 0);
      const entries = [remap(1, 11), remap(2, 12, { lostSectors: 2 })];
      store.transaction(() => store.remaps.replaceTable(pair.id, entries.map(recordOf), [], 3));
      expect(databaseFingerprint(store, pair.id, fingerprint(entries))).toBe(fingerprint(entries));
      const raw = new Database(file);
      raw.exec('UPDATE table_prints SET p1 = p1 + 1');
      raw.close();
      // The kept row is wrong now; the rows still match the slots, so they still agree.
      expect(store.remaps.storedPrintParts(pair.id)).not.toEqual(fromRows(store, pair.id));
      expect(databaseFingerprint(store, pair.id, fingerprint(entries))).toBe(fingerprint(entries));
      // A malformed row is no row.
      const raw2 = new Database(file);
      raw2.exec("UPDATE table_prints SET p2 = 'x'");
      raw2.close();
      expect(store.remaps.storedPrintParts(pair.id)).toBeUndefined();
      expect(databaseFingerprint(store, pair.id, fingerprint(entries))).toBe(fingerprint(entries));
      // And rows that differ from the slots disagree, whatever the kept row says.
      expect(databaseFingerprint(store, pair.id, fingerprint([remap(1, 11)]))).toBe(fingerprint(entries));
    } finally {
      store.close();
    }
  });
});
