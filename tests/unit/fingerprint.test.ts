/**
 * Table fingerprints: the JavaScript hash over slot entries and the SQLite
 * aggregate over the database rows must agree exactly on every table, and a
 * change of any one field, or a swap between entries, must change them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { FINGERPRINT_PRIME } from '../../lib/meta/fingerprint.js';
import { databaseEntries, databaseFingerprint, fingerprint, recordOf } from '../../lib/meta/reconcile.js';
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
      const pair = store.pairs.insert({ name: 'p', uuid: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/x', sparePath: '/y', blockSize: 4096, mainBytes: 2 ** 50, spareBytes: 2 ** 46, createdAt: 1, metaSeq: 1 });
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
    ['a state', [base[0] as SlotEntry, base[1] as SlotEntry, remap(30, -1, { state: 'remapped', reason: 'read-error' })]],
    ['an entry missing', [base[0] as SlotEntry, base[1] as SlotEntry]],
    ['an entry added', [...base, retired(300, 1)]],
  ])('a change is seen: %s', (_name, changed) => {
    expect(fingerprint(changed)).not.toBe(fingerprint(base));
    expect(inDatabase(changed)).toBe(fingerprint(changed));
  });
});
