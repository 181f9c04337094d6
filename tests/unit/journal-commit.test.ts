/**
 * MetaJournal after the database has committed: a change counts as persisted
 * then, so a spare whose every slot write fails must not make the write fail
 * (the index would stay behind the database and hand the same spare block out
 * again), and a table with no room must be refused before the database
 * changes. Real RemapDevice, MemoryDevices under FaultDevices, a real SQLite
 * file.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FaultDevice } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { SECTOR_BYTES, spareLayout } from '../../lib/format/layout.js';
import { HEADER_CRC_OFFSET } from '../../lib/format/slot-codec.js';
import { MetaJournal } from '../../lib/meta/journal.js';
import { identityOf, reconcile } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { indexFromState } from '../../lib/pair/pair.js';
import { RemapDevice } from '../../lib/remap/remap-device.js';
import { type PairRecord, Store } from '../../lib/store/db.js';

const B = 4096;
const MAIN_BYTES = 1024 * B;
const SPARE_BYTES = 1024 * 1024;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-journal-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function world(): { store: Store; pair: PairRecord; spareMem: MemoryDevice; mainMem: MemoryDevice } {
  const store = Store.open(path.join(dir, `j-${n++}.db`), { create: true });
  const pair = store.pairs.insert({ name: 'j', uuid: '6a0f3c1e-8b2d-4e5f-9a1b-2c3d4e5f6a7b', mainPath: '/dev/null', sparePath: '/dev/zero', blockSize: B, mainBytes: MAIN_BYTES, spareBytes: SPARE_BYTES, createdAt: 1, metaSeq: 1 });
  const spareMem = new MemoryDevice('spare', SPARE_BYTES);
  const layout = spareLayout(SPARE_BYTES, B);
  expect(new SlotSet(spareMem, layout).writeAll(new MetaState(identityOf(pair), layout, 1, []))).toEqual([]);
  return { store, pair, spareMem, mainMem: new MemoryDevice('main', MAIN_BYTES) };
}

function open(w: ReturnType<typeof world>, main: FaultDevice | MemoryDevice, spare: FaultDevice | MemoryDevice, log: string[]) {
  const slots = new SlotSet(spare, spareLayout(SPARE_BYTES, B));
  const opened = reconcile(w.store, w.pair, slots, { write: true });
  const journal = new MetaJournal(w.store, w.pair, opened.state, slots, (line) => log.push(line), opened.highestSeen);
  return { dev: new RemapDevice('j', main, spare, B, indexFromState(w.pair, opened.state), journal), journal, slots, opened };
}

const fill = (byte: number) => Buffer.alloc(B, byte);

describe('MetaJournal once the database has committed', () => {
  it('every slot write failing: the write that needed the remap still succeeds, the next remap takes another spare block, and reopening finds both', () => {
    const w = world();
    const main = new FaultDevice(w.mainMem, 'main');
    const spare = new FaultDevice(w.spareMem, 'spare');
    const log: string[] = [];
    const { dev, slots, journal } = open(w, main, spare, log);
    for (let i = 0; i < 5; i++) spare.badSectors.add(slots.slotOffset(i) / SECTOR_BYTES); // every slot's header
    main.badSectors.add((100 * B) / SECTOR_BYTES);
    main.badSectors.add((200 * B) / SECTOR_BYTES);

    dev.write(fill(0x11), 100 * B);
    dev.flush();
    dev.write(fill(0x22), 200 * B);
    dev.flush();
    expect(log.join('\n')).toMatch(/no slot holds the table now, only the database does/);
    const rows = w.store.remaps.list(w.pair.id).filter((r) => r.state === 'remapped');
    expect(rows.map((r) => r.mainBlock).sort((a, b) => a - b)).toEqual([100, 200]);
    expect(new Set(rows.map((r) => r.spareBlock)).size).toBe(2);
    const got = Buffer.alloc(B);
    dev.read(got, 100 * B);
    expect(got.equals(fill(0x11))).toBe(true);

    // The spare recovers. A repair while serving (as the daemon's verify --repair does) rewrites the slots, and
    // from then on every change reaches all five again.
    spare.badSectors.clear();
    journal.repaired(reconcile(w.store, w.pair, slots, { write: true, inForce: journal.state }).unwritten);
    main.badSectors.add((300 * B) / SECTOR_BYTES);
    dev.write(fill(0x33), 300 * B);
    const layout = spareLayout(SPARE_BYTES, B);
    expect(new SlotSet(w.spareMem, layout).readAll({ uuid: w.pair.uuid }).map((r) => r.valid && r.sequence === journal.state.sequence)).toEqual([true, true, true, true, true]);
    const again = open(w, w.mainMem, w.spareMem, []);
    for (const [block, byte] of [[100, 0x11], [200, 0x22]] as const) {
      again.dev.read(got, block * B);
      expect({ block, ok: got.equals(fill(byte)) }).toEqual({ block, ok: true });
    }
    expect(new SlotSet(w.spareMem, spareLayout(SPARE_BYTES, B)).readAll({ uuid: w.pair.uuid }).every((r) => r.valid && r.sequence === again.journal.state.sequence)).toBe(true);
    w.store.close();
  });

  it('a table with no room left is refused before the database changes, and the pair still opens', () => {
    const w = world();
    const log: string[] = [];
    const { journal } = open(w, w.mainMem, w.spareMem, log);
    const capacity = spareLayout(SPARE_BYTES, B).slotEntryCapacity;
    const pending = (mainBlock: number) => journal.commitRemap({ mainBlock, spareBlock: -1, reason: 'read-error', state: 'pending', lostSectors: 1, createdAt: 10 });
    for (let b = 0; b < capacity; b++) pending(b);
    const seq = w.store.pairs.metaSeq(w.pair.id);
    expect(() => pending(capacity)).toThrow(/persist metadata .*: the metadata slots are full \(\d+ entries\)/);
    expect(w.store.pairs.metaSeq(w.pair.id)).toBe(seq);
    expect(w.store.remaps.list(w.pair.id)).toHaveLength(capacity);
    pending(3); // an entry that is already there still changes
    const reopened = reconcile(w.store, w.pair, new SlotSet(w.spareMem, spareLayout(SPARE_BYTES, B)), { write: false });
    expect({ consistent: reopened.consistent, entries: reopened.state.entries.length }).toEqual({ consistent: true, entries: capacity });
    w.store.close();
  });
});

describe('sequence numbers after a torn copy', () => {
  it('a copy whose header names a higher sequence but does not hold a table: the next change goes above it', () => {
    const w = world();
    const layout = spareLayout(SPARE_BYTES, B);
    const slots = new SlotSet(w.spareMem, layout);
    // Slot 0 torn mid-update by another database's change at sequence 9: its header decodes, its CRC does not hold.
    const torn = new MetaState(identityOf(w.pair), layout, 9, []).header(0, 5);
    torn.writeUInt32LE(torn.readUInt32LE(HEADER_CRC_OFFSET) ^ 1, HEADER_CRC_OFFSET);
    w.spareMem.write(torn, slots.slotOffset(0));
    const { journal } = open(w, w.mainMem, w.spareMem, []);
    expect(journal.state.sequence).toBe(1); // the slots' table, which the database agrees with
    journal.commitRemap({ mainBlock: 4, spareBlock: -1, reason: 'read-error', state: 'pending', lostSectors: 1, createdAt: 10 });
    expect({ state: journal.state.sequence, database: w.store.pairs.metaSeq(w.pair.id) }).toEqual({ state: 10, database: 10 });
    w.store.close();
  });
});
