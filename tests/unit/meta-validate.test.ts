/**
 * The validity rules (lib/format/validate.ts) and adoption (reconcile.ts):
 * the next valid copy is tried before the database; copies are compared by
 * decoded content, so non-zero reserved bytes neither make good copies
 * stale nor spread on repair; an unadopted copy is never reported valid
 * without its entry checks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { crc32, headerCrc, HEADER_CRC_OFFSET, type SlotEntry } from '../../lib/format/slot-codec.js';
import { fingerprint, identityOf, reconcile } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { pairNameProblem, tableProblem, uuidProblem } from '../../lib/format/validate.js';
import { toVerifyReport } from '../../lib/meta/verify.js';
import { slotHeaderRegionBytes, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, spareLayout } from '../../lib/format/layout.js';
import { type PairRecord, Store } from '../../lib/store/db.js';
import { poolBlockAt } from '../helpers/pool.js';
import { match } from '../helpers/match.js';

const BLOCK = 4096;
const SPARE_BYTES = 2 * 1024 * 1024;
const MAIN_BYTES = 64 * 1024 * 1024;
const LAYOUT = spareLayout(SPARE_BYTES, BLOCK);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-validate-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const remap = (mainBlock: number, n: number): SlotEntry => ({ mainBlock, spareBlock: poolBlockAt(LAYOUT, n), createdAt: 1700000000000 + n, reason: 'manual', state: 'remapped', lostSectors: 0 });
const BASE: SlotEntry[] = [remap(1, 0), remap(2, 1), remap(3, 2)];

let counter = 0;
function world(seq: number): { store: Store; pair: PairRecord; dev: MemoryDevice; slots: SlotSet } {
  const store = Store.open(path.join(dir, `v-${counter++}.db`), { create: true });
  const pair = store.pairs.insert({ name: 'v', uuid: '5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d', mainPath: '/dev/null', sparePath: '/dev/null', blockSize: BLOCK, mainBytes: MAIN_BYTES, spareBytes: SPARE_BYTES, createdAt: 1, metaSeq: seq });
  store.transaction(() => store.remaps.replaceTable(pair.id, BASE.map((e) => ({ ...e, reason: 'manual' as const, state: 'remapped' as const })), [], seq));
  const dev = new MemoryDevice('spare', SPARE_BYTES);
  const slots = new SlotSet(dev, LAYOUT);
  expect(slots.writeAll(new MetaState(identityOf(pair), LAYOUT, seq, BASE))).toEqual([]);
  return { store, pair, dev, slots };
}

/** Writes `entries` at `seq` into the given slots only (a full, well-sealed copy). */
function writeCopy(w: ReturnType<typeof world>, seq: number, entries: SlotEntry[], only: number[]): void {
  expect(w.slots.writeAll(new MetaState(identityOf(w.pair), LAYOUT, seq, entries), only)).toEqual([]);
}

/** Sets reserved bytes 28..31 of entry k in slot i, and reseals its page and header CRCs. */
function dirtyReserved(w: ReturnType<typeof world>, i: number, k: number): void {
  const off = w.slots.slotOffset(i);
  const pageOff = off + slotHeaderRegionBytes(LAYOUT.slotEntryCapacity);
  w.dev.data.writeUInt32LE(0xdeadbeef, pageOff + 32 * k + 28);
  w.dev.data.writeUInt32LE(crc32(w.dev.data.subarray(pageOff, pageOff + SLOT_PAGE_BYTES)), off + SLOT_HEADER_BYTES);
  const head = w.dev.data.subarray(off, off + SLOT_HEADER_BYTES);
  head.writeUInt32LE(headerCrc(head, w.dev.data.subarray(off + SLOT_HEADER_BYTES, off + SLOT_HEADER_BYTES + 4)), HEADER_CRC_OFFSET);
}

describe('validity rules', () => {
  it.each(['a/b', '../x', '.remapfs', '', 'x\ny', 'x\n', '-x', '_x', 'a'.repeat(65), 'é'])('refuses the name %j', (name) => {
    expect(pairNameProblem(name)).toMatch(/invalid pair name/);
  });

  it.each(['disk0', 'a', 'A.b_c-d', 'a'.repeat(64)])('accepts the name %j', (name) => {
    expect(pairNameProblem(name)).toBeUndefined();
  });

  it.each(['00000000-0000-0000-0000-000000000000', '5B4A3C2D-1E0F-4A9B-8C7D-6E5F4A3B2C1D', '5b4a3c2d-1e0f-1a9b-8c7d-6e5f4a3b2c1d', '5b4a3c2d-1e0f-4a9b-0c7d-6e5f4a3b2c1d', 'xyz'])('refuses the UUID %s', (uuid) => {
    expect(uuidProblem(uuid)).toMatch(/invalid pair uuid/);
  });

  it.each<[string, SlotEntry[], RegExp]>([
    ['a spare block inside a slot', [{ ...remap(9, 0), spareBlock: LAYOUT.slots[2]?.startBlock as number }], /lies in metadata slot 2/],
    ['a spare block past the end', [{ ...remap(9, 0), spareBlock: LAYOUT.spareBlocks }], /outside the spare/],
    ['a spare block used twice', [remap(9, 0), { ...remap(10, 0) }], /used twice/],
    ['a spare block both remapped and retired', [remap(9, 0), { mainBlock: -1, spareBlock: poolBlockAt(LAYOUT, 0), createdAt: 1, reason: 'none', state: 'retired', lostSectors: 0 }], /used twice/],
    ['a main block twice', [remap(9, 0), remap(9, 1)], /main block 9 has two entries/],
    ['a main block remapped and pending', [remap(9, 0), { mainBlock: 9, spareBlock: -1, createdAt: 1, reason: 'read-error', state: 'pending', lostSectors: 1 }], /has two entries/],
    ['a retired entry with a main block', [{ mainBlock: 4, spareBlock: poolBlockAt(LAYOUT, 3), createdAt: 1, reason: 'none', state: 'retired', lostSectors: 0 }], /retired entry has main block/],
    ['a retired entry with a reason', [{ mainBlock: -1, spareBlock: poolBlockAt(LAYOUT, 3), createdAt: 1, reason: 'manual', state: 'retired', lostSectors: 0 }], /retired entry has reason/],
    ['a pending entry with a spare block', [{ mainBlock: 4, spareBlock: poolBlockAt(LAYOUT, 3), createdAt: 1, reason: 'read-error', state: 'pending', lostSectors: 0 }], /pending entry has spare block/],
    ['a pending entry with reason manual', [{ mainBlock: 4, spareBlock: -1, createdAt: 1, reason: 'manual', state: 'pending', lostSectors: 0 }], /pending entry has reason manual/],
    ['a remapped entry with reason none', [{ ...remap(4, 3), reason: 'none' }], /remapped entry has reason none/],
    ['a label entry off the label block', [{ ...remap(4, 3), reason: 'label' }], /not on the label block/],
    ['too many lost sectors', [{ ...remap(4, 3), lostSectors: 9 }], /9 lost sectors in a block of 8/],
    ['a main block past the end', [remap(MAIN_BYTES / BLOCK, 3)], /outside the device/],
    ['a main block of 2^53', [remap(2 ** 53, 3)], /2\^53 or more/],
  ])('refuses a table with %s', (_what, entries, reason) => {
    expect(tableProblem(entries, LAYOUT, MAIN_BYTES, BLOCK)).toMatch(reason);
  });

  it('accepts a table with every state, the label entry included', () => {
    const entries: SlotEntry[] = [
      { ...remap(MAIN_BYTES / BLOCK - 1, 0), reason: 'label' },
      remap(5, 1),
      { mainBlock: 6, spareBlock: -1, createdAt: 1, reason: 'imported', state: 'pending', lostSectors: 8 },
      { mainBlock: -1, spareBlock: poolBlockAt(LAYOUT, 2), createdAt: 1, reason: 'none', state: 'retired', lostSectors: 0 },
    ];
    expect(tableProblem(entries, LAYOUT, MAIN_BYTES, BLOCK)).toBeUndefined();
  });
});

describe('adoption', () => {
  it('tries the next valid copy before the database', () => {
    const w = world(5);
    const newer = [...BASE, remap(4, 3)];
    writeCopy(w, 6, newer, [2, 3, 4]);
    // Slots 0 and 1 claim a higher sequence, with correct CRCs, but a spare block used twice.
    writeCopy(w, 9, [...BASE, { ...remap(4, 3), spareBlock: poolBlockAt(LAYOUT, 0) }], [0, 1]);
    const r = reconcile(w.store, w.pair, w.slots, { write: true });
    expect(r.source).toBe('slots');
    expect(r.sourceSlot).toBe(2);
    expect(r.sequence).toBe(6);
    expect(fingerprint(r.state.entries)).toBe(fingerprint(newer));
    expect(r.repaired).toEqual(expect.arrayContaining([expect.stringContaining('database restored from slot 2'), expect.stringMatching(/slot 0 rewritten \(invalid: .*used twice/)]));
    expect(reconcile(w.store, w.pair, w.slots, { write: false }).consistent).toBe(true);
    w.store.close();
  });

  it('never reports an unadopted copy valid without its entry checks', () => {
    const w = world(5);
    // Slot 3: an older, well-sealed copy whose table breaks the rules.
    writeCopy(w, 4, [remap(1, 0), remap(2, 0)], [3]);
    const v = toVerifyReport(w.pair, reconcile(w.store, w.pair, w.slots, { write: false }));
    expect(v.slots[3]).toMatchObject({ valid: false, current: false, reason: match.containing('used twice') });
    expect(v.slots.filter((s) => s.valid && s.current).map((s) => s.index)).toEqual([0, 1, 2, 4]);
    w.store.close();
  });

  it('a different table under the same sequence is stale, and named so', () => {
    const w = world(5);
    writeCopy(w, 5, [...BASE, remap(4, 3)], [1]);
    const v = toVerifyReport(w.pair, reconcile(w.store, w.pair, w.slots, { write: false }));
    expect(v.slots[1]).toMatchObject({ valid: true, current: false, reason: 'a different table under the current sequence 5' });
    w.store.close();
  });
});

describe('reserved bytes', () => {
  it('non-zero reserved bytes do not make good copies stale, and repair never spreads them', () => {
    const w = world(5);
    for (const i of [1, 2, 3, 4]) dirtyReserved(w, i, 1);
    const checked = reconcile(w.store, w.pair, w.slots, { write: false });
    expect(checked.consistent).toBe(true);
    expect(checked.staleSlots).toEqual([]);
    expect(checked.slots.every((s) => s.valid)).toBe(true);

    // Every copy dirty: the adopted table is clean, and opening zeroes the copies.
    dirtyReserved(w, 0, 2);
    const opened = reconcile(w.store, w.pair, w.slots, { write: true });
    expect(opened.source).toBe('slots');
    expect(opened.state.page(0).readUInt32LE(32 * 2 + 28)).toBe(0);
    expect(opened.repaired.filter((l) => l.includes('reserved bytes were not zero'))).toHaveLength(5);
    for (let i = 0; i < 5; i++) {
      const pageOff = w.slots.slotOffset(i) + slotHeaderRegionBytes(LAYOUT.slotEntryCapacity);
      expect(w.dev.data.readUInt32LE(pageOff + 32 * 1 + 28)).toBe(0);
      expect(w.dev.data.readUInt32LE(pageOff + 32 * 2 + 28)).toBe(0);
    }
    expect(reconcile(w.store, w.pair, w.slots, { write: false }).consistent).toBe(true);
    w.store.close();
  });
});
