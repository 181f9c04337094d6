/**
 * The failure paths of RemapDevice on fake devices: remap on write errors,
 * pending blocks and exact EIO on read errors, weak reads, healing writes,
 * retired spare blocks, exhaustion; and "fail the Nth I/O" sweeps over the
 * remap path (copy, write to spare, flush, persist, switch).
 */
import type { BlockDevice } from '../../lib/block/device.js';
import { FaultDevice, ioError } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { toErrno } from '../../lib/fs/ops.js';
import { RemapIndex } from '../../lib/remap/index-table.js';
import { spareLayout } from '../../lib/format/layout.js';
import { RemapDevice, type RemapJournal } from '../../lib/remap/remap-device.js';
import type { RemapRecord } from '../../lib/store/db.js';
import Fuse from 'fuse-native';

const B = 4096;
const MAIN_BYTES = 1024 * 1024;
const SPARE_BYTES = 512 * 1024;

/** Counts every I/O (device reads, writes, flushes and journal commits) and fails the Nth once. */
class OpCounter {
  count = 0;
  failAt = 0;
  tick(what: string): void {
    this.count++;
    if (this.count === this.failAt) throw ioError(what, `injected failure at I/O ${this.count}`);
  }
}

class CountingDevice implements BlockDevice {
  constructor(readonly next: BlockDevice, private readonly ops: OpCounter) {}
  get name(): string {
    return this.next.name;
  }
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(buf: Buffer, off: number): void {
    this.ops.tick('read');
    this.next.read(buf, off);
  }
  write(buf: Buffer, off: number): void {
    this.ops.tick('write');
    this.next.write(buf, off);
  }
  flush(): void {
    this.ops.tick('flush');
    this.next.flush();
  }
  close(): void {
    this.next.close();
  }
}

class FakeJournal implements RemapJournal {
  remaps: RemapRecord[] = [];
  retired: number[] = [];
  constructor(private readonly ops?: OpCounter) {}
  commitRemap(entry: RemapRecord): void {
    this.ops?.tick('persist');
    this.remaps.push({ ...entry });
  }
  commitRetired(spareBlock: number): void {
    this.ops?.tick('persist');
    this.retired.push(spareBlock);
  }
  last(mainBlock: number): RemapRecord | undefined {
    return [...this.remaps].reverse().find((r) => r.mainBlock === mainBlock);
  }
}

function setup(opts: { ops?: OpCounter; spareBytes?: number } = {}) {
  const mainMem = new MemoryDevice('main', MAIN_BYTES);
  const spareMem = new MemoryDevice('spare', opts.spareBytes ?? SPARE_BYTES);
  for (let i = 0; i < mainMem.data.length; i++) mainMem.data[i] = (i * 31 + 7) & 0xff;
  const mainFault = new FaultDevice(mainMem);
  const spareFault = new FaultDevice(spareMem);
  const main: BlockDevice = opts.ops ? new CountingDevice(mainFault, opts.ops) : mainFault;
  const spare: BlockDevice = opts.ops ? new CountingDevice(spareFault, opts.ops) : spareFault;
  const layout = spareLayout(spareMem.sizeBytes, B);
  const index = new RemapIndex(MAIN_BYTES / B, layout);
  const journal = new FakeJournal(opts.ops);
  const events: string[] = [];
  const dev = new RemapDevice('t', main, spare, B, index, journal, { onEvent: (l) => events.push(l) });
  return { mainMem, spareMem, mainFault, spareFault, index, journal, dev, events, layout };
}

function original(byteOffset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((byteOffset + i) * 31 + 7) & 0xff;
  return b;
}

function readBack(dev: RemapDevice, byteOffset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  dev.read(b, byteOffset);
  return b;
}

describe('write errors on main', () => {
  it('remaps a block whose write fails; the write succeeds and reads back', () => {
    const t = setup();
    t.mainFault.badSectors.add(10 * 8 + 3);
    const data = Buffer.alloc(3 * B, 0x42);
    t.dev.write(data, 9 * B);
    expect(t.index.spareBlockOf(10)).toBeGreaterThanOrEqual(0);
    expect(t.index.spareBlockOf(9)).toBe(-1);
    expect(t.journal.last(10)).toMatchObject({ reason: 'write-error', state: 'remapped', lostSectors: 0 });
    expect(readBack(t.dev, 9 * B, 3 * B)).toEqual(data);
    expect(t.mainMem.data.subarray(9 * B, 10 * B)).toEqual(data.subarray(0, B));
  });

  it('a partial write copies the rest of the block, zero-filling only the unreadable sector', () => {
    const t = setup();
    t.mainFault.badSectors.add(20 * 8);
    const patch = Buffer.from('hello, spare');
    t.dev.write(patch, 20 * B + 100);
    const expected = original(20 * B, B);
    expected.fill(0, 0, 512); // the rest of the unreadable sector 0
    patch.copy(expected, 100);
    expect(readBack(t.dev, 20 * B, B)).toEqual(expected);
    expect(t.journal.last(20)).toMatchObject({ reason: 'write-error', lostSectors: 1 });
  });

  it('fails with EIO once the spare pool is exhausted; earlier remaps keep working', () => {
    const t = setup({ spareBytes: 64 * 1024 }); // tiny spare
    const pool = t.layout.poolBlocks;
    expect(pool).toBeGreaterThan(0);
    for (let b = 0; b < pool + 2; b++) t.mainFault.badSectors.add((100 + b) * 8);
    for (let b = 0; b < pool; b++) t.dev.write(Buffer.alloc(B, b + 1), (100 + b) * B);
    let err: unknown;
    try {
      t.dev.write(Buffer.alloc(B, 0xff), (100 + pool) * B);
    } catch (e) {
      err = e;
    }
    expect(String(err)).toContain('spare pool exhausted');
    expect(toErrno(err)).toBe(Fuse.EIO);
    for (let b = 0; b < pool; b++) expect(readBack(t.dev, (100 + b) * B, B)).toEqual(Buffer.alloc(B, b + 1));
  });
});

describe('read errors on main', () => {
  it('marks a block pending and answers EIO only for requests covering its bad sector', () => {
    const t = setup();
    t.mainFault.badSectors.add(30 * 8 + 2);
    expect(() => readBack(t.dev, 29 * B, 3 * B)).toThrow(/EIO/);
    expect(t.index.isPending(30)).toBe(true);
    expect(t.journal.last(30)).toMatchObject({ state: 'pending', reason: 'read-error', spareBlock: -1, lostSectors: 1 });
    expect(t.dev.counters.uncorrectableReads).toBe(1);
    // Requests that avoid sector 2 of block 30 read normally, even inside the block.
    expect(readBack(t.dev, 30 * B, 1024)).toEqual(original(30 * B, 1024));
    expect(readBack(t.dev, 30 * B + 1536, B - 1536)).toEqual(original(30 * B + 1536, B - 1536));
    expect(readBack(t.dev, 29 * B, B)).toEqual(original(29 * B, B));
    expect(() => readBack(t.dev, 30 * B + 1024, 512)).toThrow(/EIO/);
    expect(t.journal.remaps.filter((r) => r.mainBlock === 30)).toHaveLength(1);
  });

  it('retries a configurable number of times before giving up', () => {
    const t = setup();
    t.dev.readRetries = 4;
    t.mainFault.badSectors.add(40 * 8);
    const before = t.mainFault.readCount;
    expect(() => readBack(t.dev, 40 * B, B)).toThrow(/EIO/);
    // The failed read counts as the first attempt; 4 retries; then one read per sector.
    expect(t.mainFault.readCount - before).toBe(1 + 4 + 8);
  });

  it('a weak block (fails, then reads on retry) is copied to the spare at once', () => {
    const t = setup();
    t.mainFault.flakySectors.set(50 * 8 + 1, 1);
    expect(readBack(t.dev, 50 * B, B)).toEqual(original(50 * B, B));
    expect(t.journal.last(50)).toMatchObject({ reason: 'weak-read', state: 'remapped' });
    expect(t.dev.counters.weakReads).toBe(1);
    t.mainFault.badSectors.add(50 * 8 + 1); // now dead on main: the spare copy serves
    expect(readBack(t.dev, 50 * B, B)).toEqual(original(50 * B, B));
  });

  it('a write over a pending block heals it; a partial one keeps the readable rest', () => {
    const t = setup();
    t.mainFault.badSectors.add(60 * 8 + 7);
    t.mainFault.badSectors.add(61 * 8);
    expect(() => readBack(t.dev, 60 * B, 2 * B)).toThrow(/EIO/);
    expect(t.index.pendingCount).toBe(2);
    t.dev.write(Buffer.alloc(B, 0x11), 60 * B);
    t.dev.write(Buffer.alloc(100, 0x22), 61 * B + 1000);
    expect(t.index.pendingCount).toBe(0);
    expect(readBack(t.dev, 60 * B, B)).toEqual(Buffer.alloc(B, 0x11));
    const expected61 = original(61 * B, B);
    expected61.fill(0, 0, 512);
    expected61.fill(0x22, 1000, 1100);
    expect(readBack(t.dev, 61 * B, B)).toEqual(expected61);
    expect(t.journal.last(61)).toMatchObject({ state: 'remapped', reason: 'read-error', lostSectors: 1 });
  });
});

describe('errors on the spare', () => {
  it('retires a spare block that fails a write and uses the next one', () => {
    const t = setup();
    const first = t.index.allocate();
    t.spareFault.badSectors.add(first * 8);
    t.mainFault.badSectors.add(70 * 8);
    t.dev.write(Buffer.alloc(B, 0x33), 70 * B);
    expect(t.journal.retired).toEqual([first]);
    expect(t.index.spareBlockOf(70)).not.toBe(first);
    expect(readBack(t.dev, 70 * B, B)).toEqual(Buffer.alloc(B, 0x33));
    expect(t.index.allocate()).not.toBe(first);
  });

  it('moves a remapped block whose spare block starts failing writes', () => {
    const t = setup();
    t.dev.remapBlock(80, 'manual');
    const old = t.index.spareBlockOf(80);
    t.spareFault.badSectors.add(old * 8 + 4);
    t.dev.write(Buffer.alloc(200, 0x44), 80 * B + 2000); // sectors 3 and 4
    const moved = t.index.spareBlockOf(80);
    expect(moved).not.toBe(old);
    expect(t.journal.retired).toContain(old);
    const expected = original(80 * B, B);
    expected.fill(0x44, 2000, 2200);
    expected.fill(0, 2200, 5 * 512); // the rest of sector 4, unreadable on the old spare block
    expect(readBack(t.dev, 80 * B, B)).toEqual(expected);
  });
});

describe('fail the Nth I/O of a remap: the result is the old state or the new one', () => {
  function cleanRunOps(run: (t: ReturnType<typeof setup>) => void, prepare: (t: ReturnType<typeof setup>) => void): number {
    const ops = new OpCounter();
    const t = setup({ ops });
    prepare(t);
    ops.count = 0;
    run(t);
    return ops.count;
  }

  const scenarios: Array<{ name: string; block: number; prepare: (t: ReturnType<typeof setup>) => void; run: (t: ReturnType<typeof setup>) => void; newData: (block: number) => Buffer }> = [
    {
      name: 'partial write to a block main refuses',
      block: 90,
      prepare: (t) => t.mainFault.badSectors.add(90 * 8 + 6),
      run: (t) => t.dev.write(Buffer.alloc(700, 0x5a), 90 * B + 3000), // covers sector 6
      newData: (block) => {
        const d = original(block * B, B);
        d.fill(0x5a, 3000, 3700);
        return d;
      },
    },
    {
      name: 'manual remap (copy, write to spare, flush, persist, switch)',
      block: 91,
      prepare: () => undefined,
      run: (t) => void t.dev.remapBlock(91, 'manual'),
      newData: (block) => original(block * B, B),
    },
  ];

  for (const sc of scenarios) {
    const total = cleanRunOps(sc.run, sc.prepare);
    it(`${sc.name}: ${total} I/Os in a clean run`, () => {
      expect(total).toBeGreaterThanOrEqual(4);
    });
    for (let n = 1; n <= total; n++) {
      it(`${sc.name}: failure at I/O ${n}`, () => {
        const ops = new OpCounter();
        const t = setup({ ops });
        sc.prepare(t);
        ops.count = 0;
        ops.failAt = n;
        let threw = false;
        try {
          sc.run(t);
        } catch {
          threw = true;
        }
        ops.failAt = 0;
        const spareBlock = t.index.spareBlockOf(sc.block);
        const entry = t.journal.last(sc.block);
        if (spareBlock >= 0) {
          // New state: persisted, switched, and the spare block holds the data.
          expect(entry).toMatchObject({ spareBlock, state: 'remapped' });
          expect(t.spareMem.data.subarray(spareBlock * B, (spareBlock + 1) * B)).toEqual(sc.newData(sc.block));
          expect(readBack(t.dev, sc.block * B, B)).toEqual(sc.newData(sc.block));
        } else {
          // Old state: nothing persisted for the block, the request failed, main unchanged where readable.
          expect(entry).toBeUndefined();
          expect(threw).toBe(true);
          const mainNow = t.mainMem.data.subarray(sc.block * B, (sc.block + 1) * B);
          expect(mainNow).toEqual(original(sc.block * B, B));
        }
        // Never a spare block both used and retired, never a retired block in the index.
        for (const r of t.journal.retired) expect(t.journal.remaps.some((e) => e.spareBlock === r && t.index.spareBlockOf(e.mainBlock) === r)).toBe(false);
      });
    }
  }
});

/** A main whose chosen sector fails its 1st read and every read from its `failFrom`th on: weak, then worse. */
class WorseningSector implements BlockDevice {
  private reads = 0;
  constructor(
    readonly next: BlockDevice,
    private readonly sector: number,
    private readonly failFrom: number,
  ) {}
  get name(): string {
    return this.next.name;
  }
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(buf: Buffer, off: number): void {
    const first = Math.floor(off / 512);
    if (this.sector >= first && this.sector < first + Math.ceil(buf.length / 512)) {
      this.reads++;
      if (this.reads === 1 || this.reads >= this.failFrom) throw ioError('read', `sector ${this.sector}`);
    }
    this.next.read(buf, off);
  }
  write(buf: Buffer, off: number): void {
    this.next.write(buf, off);
  }
  flush(): void {
    this.next.flush();
  }
  close(): void {
    this.next.close();
  }
}

describe('a weak block whose sector fails again while it is moved', () => {
  it('becomes pending instead of being copied with zeros: later reads give the data or EIO, never zeros', () => {
    const mainMem = new MemoryDevice('main', MAIN_BYTES);
    for (let i = 0; i < mainMem.data.length; i++) mainMem.data[i] = (i * 31 + 7) & 0xff;
    const sector = 60 * 8 + 5;
    const layout = spareLayout(SPARE_BYTES, B);
    const index = new RemapIndex(MAIN_BYTES / B, layout);
    const journal = new FakeJournal();
    const dev = new RemapDevice('t', new WorseningSector(mainMem, sector, 3), new MemoryDevice('spare', SPARE_BYTES), B, index, journal);
    // Read 1 fails, read 2 (the retry) works: weak. The move reads it a 3rd time and on: it fails from then on.
    expect(readBack(dev, 60 * B, B)).toEqual(original(60 * B, B));
    expect(dev.counters.weakReads).toBe(1);
    expect({ spare: index.spareBlockOf(60), pending: index.isPending(60), entry: journal.last(60) }).toMatchObject({ spare: -1, pending: true, entry: { state: 'pending', lostSectors: 1 } });
    expect(() => readBack(dev, 60 * B, B)).toThrow(/EIO|unreadable/);
    // The other sectors of the block still read.
    expect(readBack(dev, 60 * B, 512)).toEqual(original(60 * B, 512));
  });

  it('a sector that reads again within the retries is moved whole, with its data', () => {
    const mainMem = new MemoryDevice('main', MAIN_BYTES);
    for (let i = 0; i < mainMem.data.length; i++) mainMem.data[i] = (i * 31 + 7) & 0xff;
    const layout = spareLayout(SPARE_BYTES, B);
    const index = new RemapIndex(MAIN_BYTES / B, layout);
    const journal = new FakeJournal();
    const flaky = new FaultDevice(mainMem);
    const dev = new RemapDevice('t', flaky, new MemoryDevice('spare', SPARE_BYTES), B, index, journal);
    flaky.flakySectors.set(70 * 8 + 2, 1);
    expect(readBack(dev, 70 * B, B)).toEqual(original(70 * B, B));
    expect(journal.last(70)).toMatchObject({ reason: 'weak-read', state: 'remapped', lostSectors: 0 });
    mainMem.data.fill(0, 70 * B, 71 * B); // main's copy is no longer read
    expect(readBack(dev, 70 * B, B)).toEqual(original(70 * B, B));
  });
});

describe('main not there (ENODEV, ENXIO, ENOMEDIUM)', () => {
  /** Fails every read and write of main with `code` while `gone` is set, as a disk that was unplugged. */
  function unplug(t: ReturnType<typeof setup>, code: string): { gone: boolean } {
    const state = { gone: true };
    const fail = (what: string) => {
      throw Object.assign(new Error(`${code}: ${what}`), { code });
    };
    const read = t.mainFault.read.bind(t.mainFault);
    const write = t.mainFault.write.bind(t.mainFault);
    t.mainFault.read = (buf: Buffer, off: number) => (state.gone ? fail('read') : read(buf, off));
    t.mainFault.write = (buf: Buffer, off: number) => (state.gone ? fail('write') : write(buf, off));
    return state;
  }

  it.each(['ENODEV', 'ENXIO', 'ENOMEDIUM'])('%s: a read fails with it and marks nothing; once main is back the blocks read as before', (code) => {
    const t = setup();
    const state = unplug(t, code);
    for (const at of [0, 5 * B, 40 * B + 512]) expect(() => readBack(t.dev, at, 3 * B)).toThrow(new RegExp(code));
    expect(t.journal.remaps).toEqual([]);
    expect(t.index.isPending(5)).toBe(false);
    state.gone = false;
    expect(readBack(t.dev, 5 * B, 3 * B)).toEqual(original(5 * B, 3 * B));
  });

  it('a whole-block write still goes to the spare; a partial one fails rather than place the unread rest as zeros', () => {
    const t = setup();
    const state = unplug(t, 'ENODEV');
    const whole = Buffer.alloc(B, 0x5a);
    t.dev.write(whole, 50 * B);
    expect(t.journal.last(50)).toMatchObject({ reason: 'write-error', state: 'remapped', lostSectors: 0 });
    expect(() => t.dev.write(Buffer.from('partial'), 60 * B + 100)).toThrow(/ENODEV/);
    expect(t.journal.last(60)).toBeUndefined();
    state.gone = false;
    expect(readBack(t.dev, 50 * B, B)).toEqual(whole);
    expect(readBack(t.dev, 60 * B, B)).toEqual(original(60 * B, B));
  });

  it('import-bad of a block while main is not there fails with the error and marks nothing', () => {
    const t = setup();
    const state = unplug(t, 'ENODEV');
    expect(() => t.dev.importBadSectors(80, new Set([3]))).toThrow(/ENODEV/);
    expect(t.journal.remaps).toEqual([]);
    state.gone = false;
    expect(t.dev.importBadSectors(80, new Set([3]))).toBe('remapped');
  });

  it('a block already pending is not walked sector by sector while main is not there', () => {
    const t = setup();
    t.mainFault.badSectors.add(70 * 8 + 1);
    expect(() => readBack(t.dev, 70 * B, B)).toThrow(/EIO/);
    expect(t.journal.remaps).toHaveLength(1);
    unplug(t, 'ENXIO');
    expect(() => readBack(t.dev, 70 * B, B)).toThrow(/ENXIO/);
    expect(() => readBack(t.dev, 71 * B, B)).toThrow(/ENXIO/);
    expect(t.journal.remaps).toHaveLength(1);
  });
});
