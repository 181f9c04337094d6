/**
 * One contract, run over every BlockDevice implementation (lib/block/device.ts):
 * what is written at any offset and size reads back, sizeBytes is the size,
 * flush makes writes durable beneath, requests outside [0, sizeBytes) are
 * refused and change nothing, and close closes what is beneath. GoneDevice
 * refuses everything, so it has its own short contract.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BlockDevice } from '../../lib/block/device.js';
import { FaultDevice } from '../../lib/block/fault-device.js';
import { FileDevice, type OpenMode } from '../../lib/block/file-device.js';
import { GoneDevice } from '../../lib/block/gone-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { errnoCodeOf } from '../../lib/errors.js';
import { spareLayout } from '../../lib/format/layout.js';
import { RemapIndex } from '../../lib/remap/index-table.js';
import { RemapDevice, type RemapJournal } from '../../lib/remap/remap-device.js';
import type { RemapRecord } from '../../lib/store/db.js';
import { dirtyPages } from '../helpers/cachestat.js';

const MiB = 1024 * 1024;

interface Subject {
  dev: BlockDevice;
  sizeBytes: number;
  /** Everything stored beneath the device, to see that a refused request changed nothing. */
  stored(): Buffer;
  /** Checks that `data` at `byteOffset` reached what is beneath (called after flush). */
  checkDurable(byteOffset: number, data: Buffer): void;
  /** Between the write and the flush: whether there is something for the flush to do (only where that shows). */
  pending?(): boolean;
  /** True once what is beneath was closed. */
  closedBeneath(): boolean;
  cleanup(): void;
}

function pattern(byteLength: number, seed: number): Buffer {
  const b = Buffer.alloc(byteLength);
  for (let i = 0; i < byteLength; i++) b[i] = (i * 97 + seed * 13 + (i >> 10)) & 0xff;
  return b;
}

function memorySubject(name: string, sizeBytes: number): Subject & { mem: MemoryDevice } {
  const mem = new MemoryDevice(name, sizeBytes);
  pattern(sizeBytes, 1).copy(mem.data);
  const flushesBefore = { n: 0 };
  return {
    mem,
    dev: mem,
    sizeBytes,
    stored: () => Buffer.from(mem.data),
    checkDurable: (off, data) => {
      expect(mem.flushes).toBeGreaterThan(flushesBefore.n);
      expect(mem.data.subarray(off, off + data.length).equals(data)).toBe(true);
      flushesBefore.n = mem.flushes;
    },
    closedBeneath: () => mem.closed,
    cleanup: () => undefined,
  };
}

const TMPFS_MAGIC = 0x01021994;

function fileSubject(mode: OpenMode): Subject {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-contract-'));
  const file = path.join(dir, 'image');
  const sizeBytes = 4 * MiB + 1000;
  fs.writeFileSync(file, pattern(sizeBytes, 2));
  const dev = FileDevice.open(file, { mode });
  const real = fs.realpathSync(file);
  const openFds = (): number => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === real;
    } catch {
      return false;
    }
  }).length;
  return {
    dev,
    sizeBytes,
    stored: () => fs.readFileSync(file),
    // A buffered write leaves dirty pages; the flush must write them back (cachestat(2); tmpfs has no writeback to
    // show, and the tests keep TMPDIR on a disk: README).
    ...(mode === 'buffered' && fs.statfsSync(dir).type !== TMPFS_MAGIC ? { pending: () => dirtyPages(file) > 0 } : {}),
    checkDurable: (off, data) => {
      expect(dirtyPages(file)).toBe(0);
      // A second, independent descriptor sees the bytes.
      const fd = fs.openSync(file, 'r');
      try {
        const got = Buffer.alloc(data.length);
        expect(fs.readSync(fd, got, 0, data.length, off)).toBe(data.length);
        expect(got.equals(data)).toBe(true);
      } finally {
        fs.closeSync(fd);
      }
    },
    closedBeneath: () => openFds() === 0,
    cleanup: () => {
      dev.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function faultSubject(): Subject {
  const inner = memorySubject('inner', 3 * MiB + 512);
  return { ...inner, dev: new FaultDevice(inner.mem) };
}

class ListJournal implements RemapJournal {
  readonly remaps: RemapRecord[] = [];
  readonly retired: number[] = [];
  commitRemap(entry: RemapRecord): void {
    this.remaps.push({ ...entry });
  }
  commitRetired(spareBlock: number): void {
    this.retired.push(spareBlock);
  }
}

/** A RemapDevice over memory devices, with some blocks already on the spare so that requests split. */
function remapSubject(): Subject {
  const blockSize = 4096;
  const main = new MemoryDevice('main', 4 * MiB);
  const spare = new MemoryDevice('spare', 2 * MiB);
  pattern(main.sizeBytes, 3).copy(main.data);
  const index = new RemapIndex(main.sizeBytes / blockSize, spareLayout(spare.sizeBytes, blockSize));
  const dev = new RemapDevice('remap', main, spare, blockSize, index, new ListJournal());
  for (const block of [0, 1, 2, 7, 100, 101, 1023]) dev.remapBlock(block, 'manual');
  const flushed = { main: 0, spare: 0 };
  return {
    dev,
    sizeBytes: main.sizeBytes,
    stored: () => Buffer.concat([main.data, spare.data]),
    checkDurable: () => {
      expect(main.flushes).toBeGreaterThan(flushed.main);
      expect(spare.flushes).toBeGreaterThan(flushed.spare);
      flushed.main = main.flushes;
      flushed.spare = spare.flushes;
    },
    closedBeneath: () => main.closed && spare.closed,
    cleanup: () => undefined,
  };
}

const SUBJECTS: Array<[string, () => Subject]> = [
  ['MemoryDevice', () => memorySubject('memory', 3 * MiB + 512)],
  ['FileDevice (auto)', () => fileSubject('auto')],
  ['FileDevice (direct)', () => fileSubject('direct')],
  ['FileDevice (dsync)', () => fileSubject('dsync')],
  ['FileDevice (buffered)', () => fileSubject('buffered')],
  ['FaultDevice with no faults', faultSubject],
  ['RemapDevice over memory devices', remapSubject],
];

function readAll(dev: BlockDevice): Buffer {
  const b = Buffer.alloc(dev.sizeBytes);
  dev.read(b, 0);
  return b;
}

describe.each(SUBJECTS)('BlockDevice contract: %s', (_name, make) => {
  let s: Subject;
  beforeEach(() => {
    s = make();
  });
  afterEach(() => {
    s.cleanup();
  });

  it('reports its size', () => {
    expect(s.dev.sizeBytes).toBe(s.sizeBytes);
    expect(readAll(s.dev).length).toBe(s.sizeBytes);
  });

  it('reads back what was written, at unaligned offsets and sizes', () => {
    const size = s.dev.sizeBytes;
    const model = readAll(s.dev);
    const writes: Array<[number, number]> = [
      [0, 1],
      [511, 2],
      [1000, 100],
      [4093, 4096 + 6],
      [3 * 4096 - 9, 5 * 4096 + 17],
      [8192, 4096],
      [MiB - 333, MiB + 4096 + 777],
      [size - 4096 - 5, 4101],
      [size - 1, 1],
      [12345, 0],
    ];
    writes.forEach(([off, len], i) => {
      const data = pattern(len, 10 + i);
      s.dev.write(data, off);
      data.copy(model, off);
      const back = Buffer.alloc(len, 0xee);
      s.dev.read(back, off);
      expect(back.equals(data)).toBe(true);
    });
    for (const [off, len] of [[1, 4095], [4095, 8194], [MiB - 1, 3], [size - 513, 513]] as const) {
      const back = Buffer.alloc(len);
      s.dev.read(back, off);
      expect(back.equals(model.subarray(off, off + len))).toBe(true);
    }
    expect(readAll(s.dev).equals(model)).toBe(true);
  });

  it('flush makes earlier writes durable beneath', () => {
    const data = pattern(3 * 4096 + 100, 42);
    // A sync elsewhere (another test's cache drop) may clean the pages before they are looked at: write again then.
    let pending = true;
    for (let attempt = 0; attempt < 5; attempt++) {
      s.dev.write(data, 4096 + 50);
      pending = s.pending?.() ?? true;
      if (pending) break;
    }
    expect(pending).toBe(true);
    s.dev.flush();
    s.checkDurable(4096 + 50, data);
  });

  it('refuses requests outside the device and changes nothing', () => {
    const size = s.dev.sizeBytes;
    const before = s.stored();
    const attempts: Array<[string, () => void]> = [
      ['write at the end', () => s.dev.write(Buffer.alloc(512, 1), size)],
      ['write across the end', () => s.dev.write(Buffer.alloc(1024, 1), size - 512)],
      ['write far past the end', () => s.dev.write(Buffer.alloc(1, 1), size * 2)],
      ['write at a negative offset', () => s.dev.write(Buffer.alloc(512, 1), -512)],
      ['read across the end', () => s.dev.read(Buffer.alloc(2), size - 1)],
      ['read at the end', () => s.dev.read(Buffer.alloc(1), size)],
      ['read at a negative offset', () => s.dev.read(Buffer.alloc(1), -1)],
    ];
    const accepted = attempts.filter(([, run]) => {
      try {
        run();
        return true;
      } catch {
        return false;
      }
    }).map(([what]) => what);
    expect(accepted).toEqual([]);
    expect(s.stored().equals(before)).toBe(true);
  });

  it('close closes what is beneath, and a read afterwards fails', () => {
    s.dev.close();
    expect(s.closedBeneath()).toBe(true);
    expect(() => s.dev.read(Buffer.alloc(512), 0)).toThrow();
  });
});

describe('BlockDevice contract: GoneDevice', () => {
  const gone = new GoneDevice('gone', 8 * MiB, 'the disk was removed');

  it('reports the size it was given', () => {
    expect(gone.sizeBytes).toBe(8 * MiB);
  });

  it.each<[string, () => void]>([
    ['read', () => gone.read()],
    ['write', () => gone.write()],
    ['flush', () => gone.flush()],
  ])('refuses %s with EIO and says why', (_op, run) => {
    let err: unknown;
    try {
      run();
    } catch (e) {
      err = e;
    }
    expect(errnoCodeOf(err)).toBe('EIO');
    expect(String((err as Error).message)).toMatch(/gone \(the disk was removed\)/);
  });

  it('refuses a read through the BlockDevice interface, and close succeeds', () => {
    const dev: BlockDevice = gone;
    expect(() => dev.read(Buffer.alloc(512), 0)).toThrow(/the disk was removed/);
    expect(() => dev.write(Buffer.alloc(512), 0)).toThrow(/the disk was removed/);
    expect(() => dev.close()).not.toThrow();
  });
});
