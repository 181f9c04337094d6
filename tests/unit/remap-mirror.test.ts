/**
 * The fast/slow boundary of RemapDevice: routes published to a RouteMirror
 * (MemoryMirror, the model of the native engine's table) around every entry
 * point, in the order the engine contract needs; the evacuation's tracking
 * decorator; and the rule that only disk errors (by errno code) move data.
 */
import type { BlockDevice } from '../../lib/block/device.js';
import { DISK_ERROR_CODES, isDiskError, isKnownFailure } from '../../lib/block/disk-error.js';
import { FaultDevice, ioError } from '../../lib/block/fault-device.js';
import { GoneDevice } from '../../lib/block/gone-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { failureLine } from '../../lib/daemon/served-mount.js';
import { RemapfsError } from '../../lib/errors.js';
import { spareLayout } from '../../lib/format/layout.js';
import { EvacTracking } from '../../lib/remap/evac-tracking.js';
import { RemapIndex } from '../../lib/remap/index-table.js';
import { MemoryMirror } from '../../lib/remap/memory-mirror.js';
import { RemapDevice, type RemapJournal } from '../../lib/remap/remap-device.js';
import { ROUTE_MAIN, ROUTE_SLOW, routeOf } from '../../lib/remap/route.js';
import { NO_MIRROR } from '../../lib/remap/route-mirror.js';
import type { RemapRecord } from '../../lib/store/db.js';

const B = 4096;
const MAIN_BYTES = 256 * B;
const SPARE_BYTES = 128 * B;

/** Appends every device call to a shared log, and can throw a chosen error on chosen calls. */
class LoggingDevice implements BlockDevice {
  throwOn: ((op: string, byteOffset: number) => Error | undefined) | undefined;
  constructor(
    readonly next: BlockDevice,
    private readonly log: string[],
  ) {}
  get name(): string {
    return this.next.name;
  }
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(buf: Buffer, off: number): void {
    this.log.push(`${this.name} read ${off / B}`);
    const err = this.throwOn?.('read', off);
    if (err) throw err;
    this.next.read(buf, off);
  }
  write(buf: Buffer, off: number): void {
    this.log.push(`${this.name} write ${off / B}`);
    const err = this.throwOn?.('write', off);
    if (err) throw err;
    this.next.write(buf, off);
  }
  flush(): void {
    this.next.flush();
  }
  close(): void {
    this.next.close();
  }
}

class LogJournal implements RemapJournal {
  remaps: RemapRecord[] = [];
  retired: number[] = [];
  constructor(private readonly log: string[]) {}
  commitRemap(entry: RemapRecord): void {
    this.log.push(`commit ${entry.mainBlock} ${entry.state} ${entry.spareBlock}`);
    this.remaps.push({ ...entry });
  }
  commitRetired(spareBlock: number): void {
    this.log.push(`retire ${spareBlock}`);
    this.retired.push(spareBlock);
  }
}

function setup() {
  const log: string[] = [];
  const mainMem = new MemoryDevice('main', MAIN_BYTES);
  for (let i = 0; i < mainMem.data.length; i++) mainMem.data[i] = (i * 13 + 5) & 0xff;
  const mainFault = new FaultDevice(mainMem, 'main');
  const main = new LoggingDevice(mainFault, log);
  const spare = new LoggingDevice(new MemoryDevice('spare', SPARE_BYTES), log);
  const index = new RemapIndex(MAIN_BYTES / B, spareLayout(SPARE_BYTES, B));
  const journal = new LogJournal(log);
  const dev = new RemapDevice('t', main, spare, B, index, journal);
  const mirror = new MemoryMirror(log);
  dev.attachMirror(mirror);
  log.length = 0; // attaching logged the flag
  return { log, mainMem, mainFault, main, spare, index, journal, dev, mirror };
}

function indexOf(log: string[], pred: (line: string) => boolean): number {
  const i = log.findIndex(pred);
  expect(i).toBeGreaterThanOrEqual(0);
  return i;
}

describe('routes', () => {
  it('routeOf: the spare block if remapped, SLOW if pending, else MAIN', () => {
    const t = setup();
    t.index.set(3, t.index.allocate());
    t.index.markPending(4);
    expect(routeOf(t.index, 3)).toBe(t.index.spareBlockOf(3));
    expect(routeOf(t.index, 3)).toBeGreaterThanOrEqual(0);
    expect(routeOf(t.index, 4)).toBe(ROUTE_SLOW);
    expect(routeOf(t.index, 5)).toBe(ROUTE_MAIN);
  });

  it('attachMirror publishes every remapped and pending block, and the writesSlow flag in force', () => {
    const log: string[] = [];
    const index = new RemapIndex(MAIN_BYTES / B, spareLayout(SPARE_BYTES, B));
    const spareBlock = index.allocate();
    index.set(7, spareBlock);
    index.markPending(9);
    const dev = new RemapDevice('t', new MemoryDevice('m', MAIN_BYTES), new MemoryDevice('s', SPARE_BYTES), B, index, new LogJournal(log));
    expect(dev.mirror).toBe(NO_MIRROR);
    dev.setWritesSlow(true);
    const mirror = new MemoryMirror();
    dev.attachMirror(mirror);
    expect(dev.mirror).toBe(mirror);
    expect([...mirror.routes]).toEqual([
      [7, spareBlock],
      [9, ROUTE_SLOW],
    ]);
    expect(mirror.writesSlow).toBe(true);
  });

  it('attachMirror publishes a table larger than one chunk in several calls, every entry once', () => {
    const blockBytes = 512;
    const remaps = 70_000; // more than one publish chunk (65,536)
    const spareBytes = 4 * remaps * blockBytes; // the pool, after the slot areas, holds every remap
    const index = new RemapIndex(2 * remaps, spareLayout(spareBytes, blockBytes), remaps);
    for (let b = 0; b < remaps; b++) index.set(2 * b, index.allocate());
    expect(index.remappedCount).toBe(remaps);
    index.markPending(1);
    const dev = new RemapDevice('t', new MemoryDevice('m', 2 * remaps * blockBytes), new MemoryDevice('s', spareBytes), blockBytes, index, new LogJournal([]));
    const mirror = new MemoryMirror();
    let calls = 0;
    const publish = mirror.publish.bind(mirror);
    mirror.publish = (blocks, routes, count) => {
      calls++;
      publish(blocks, routes, count);
    };
    dev.attachMirror(mirror);
    expect(calls).toBe(2);
    expect(mirror.routes.size).toBe(remaps + 1);
    expect(mirror.routes.get(1)).toBe(ROUTE_SLOW);
    for (let b = 0; b < remaps; b += 997) expect(mirror.routes.get(2 * b)).toBe(index.spareBlockOf(2 * b));
  });
});

describe('fence and publish around every entry point', () => {
  it('a remap publishes the spare route after the journal commit, and fences before the first device read', () => {
    const t = setup();
    const r = t.dev.remapBlock(12, 'manual');
    const fence = indexOf(t.log, (l) => l === 'fence 12+1');
    const firstRead = indexOf(t.log, (l) => l.startsWith('main read'));
    const commit = indexOf(t.log, (l) => l === `commit 12 remapped ${r.spareBlock}`);
    const publish = indexOf(t.log, (l) => l === `publish 12=${r.spareBlock}`);
    expect(fence).toBeLessThan(firstRead);
    expect(firstRead).toBeLessThan(commit);
    expect(commit).toBeLessThan(publish);
    expect(t.mirror.routeOf(12)).toBe(r.spareBlock);
    expect(t.mirror.fenced.size).toBe(0);
    expect(t.mirror.fastPath(12, 1, false)).toBe('fast');
  });

  it('a write that main refuses: fenced before main is touched, the new spare route published after the commit', () => {
    const t = setup();
    t.mainFault.badSectors.add(30 * 8 + 1);
    t.dev.write(Buffer.alloc(2 * B, 0x5a), 29 * B);
    const spareBlock = t.index.spareBlockOf(30);
    expect(spareBlock).toBeGreaterThanOrEqual(0);
    expect(t.log[0]).toBe('fence 29+2');
    const commit = indexOf(t.log, (l) => l === `commit 30 remapped ${spareBlock}`);
    const publish = indexOf(t.log, (l) => l.startsWith('publish '));
    expect(commit).toBeLessThan(publish);
    expect(t.log[publish]).toBe(`publish 29=${ROUTE_MAIN} 30=${spareBlock}`);
  });

  it('a read that finds unreadable sectors publishes the block as SLOW (pending), though the read fails', () => {
    const t = setup();
    t.mainFault.badSectors.add(40 * 8 + 2);
    expect(() => t.dev.read(Buffer.alloc(B), 40 * B)).toThrow(/EIO/);
    expect(t.index.isPending(40)).toBe(true);
    expect(t.log[0]).toBe('fence 40+1');
    const commit = indexOf(t.log, (l) => l === 'commit 40 pending -1');
    const publish = indexOf(t.log, (l) => l === `publish 40=${ROUTE_SLOW}`);
    expect(commit).toBeLessThan(publish);
    expect(t.mirror.routeOf(40)).toBe(ROUTE_SLOW);
    expect(t.mirror.fastPath(40, 1, false)).toBe('slow');
    expect(t.mirror.fenced.size).toBe(0);
  });

  it('the scanner finding a block unreadable publishes it SLOW; a later write remaps it and publishes the spare route', () => {
    const t = setup();
    t.mainFault.badSectors.add(50 * 8);
    expect(t.dev.scanFoundUnreadable(50)).toBe(true);
    expect(indexOf(t.log, (l) => l === 'fence 50+1')).toBeLessThan(indexOf(t.log, (l) => l.startsWith('main read')));
    expect(t.mirror.routeOf(50)).toBe(ROUTE_SLOW);
    t.dev.write(Buffer.alloc(B, 1), 50 * B);
    expect(t.mirror.routeOf(50)).toBe(t.index.spareBlockOf(50));
    expect(t.mirror.routeOf(50)).toBeGreaterThanOrEqual(0);
  });

  it('importBadSectors fences first and publishes the outcome (pending: SLOW; still readable: the spare block)', () => {
    const t = setup();
    t.mainFault.badSectors.add(60 * 8 + 5);
    expect(t.dev.importBadSectors(60, new Set([5]))).toBe('pending');
    expect(t.mirror.routeOf(60)).toBe(ROUTE_SLOW);
    expect(t.dev.importBadSectors(61, new Set([0]))).toBe('remapped');
    expect(t.mirror.routeOf(61)).toBe(t.index.spareBlockOf(61));
    const fence61 = indexOf(t.log, (l) => l === 'fence 61+1');
    expect(fence61).toBeLessThan(indexOf(t.log, (l) => l === 'main read 61'));
  });

  it('while JS works on a block, the engine would send requests on it to JS; afterwards they are fast again', () => {
    const t = setup();
    const seen: string[] = [];
    t.main.throwOn = (op, off) => {
      if (op === 'read') seen.push(t.mirror.fastPath(off / B, 1, false));
      return undefined;
    };
    t.dev.read(Buffer.alloc(3 * B), 70 * B);
    t.dev.remapBlock(80, 'manual');
    expect(seen).toEqual(['slow', 'slow']);
    expect(t.mirror.fastPath(70, 3, false)).toBe('fast');
    expect(t.mirror.fastPath(80, 1, true)).toBe('fast');
  });

  it('publishes even when the operation throws: a bug in a device, and an exhausted pool', () => {
    const t = setup();
    t.main.throwOn = () => new TypeError('boom');
    expect(() => t.dev.read(Buffer.alloc(B), 90 * B)).toThrow(TypeError);
    expect(() => t.dev.write(Buffer.alloc(B), 91 * B)).toThrow(TypeError);
    expect(() => t.dev.remapBlock(92, 'manual')).toThrow(TypeError);
    expect(t.log.filter((l) => l.startsWith('publish'))).toEqual([`publish 90=${ROUTE_MAIN}`, `publish 91=${ROUTE_MAIN}`, `publish 92=${ROUTE_MAIN}`]);
    expect(t.mirror.fenced.size).toBe(0);

    const u = setup();
    u.mainFault.badSectors.add(100 * 8);
    for (let b = u.index.allocate(); b >= 0; b = u.index.allocate()) u.index.retire(b);
    expect(() => u.dev.write(Buffer.alloc(B), 100 * B)).toThrow(/spare pool exhausted/);
    expect(u.log[u.log.length - 1]).toBe(`publish 100=${ROUTE_MAIN}`);
    expect(u.mirror.fenced.size).toBe(0);
  });

  it('with NO_MIRROR nothing is fenced or published and requests are served as before', () => {
    const log: string[] = [];
    const main = new MemoryDevice('m', MAIN_BYTES);
    const dev = new RemapDevice('t', main, new MemoryDevice('s', SPARE_BYTES), B, new RemapIndex(MAIN_BYTES / B, spareLayout(SPARE_BYTES, B)), new LogJournal(log));
    dev.write(Buffer.alloc(B, 9), 3 * B);
    dev.remapBlock(3, 'manual');
    const back = Buffer.alloc(B);
    dev.read(back, 3 * B);
    expect(back).toEqual(Buffer.alloc(B, 9));
    expect(log).toEqual([`commit 3 remapped ${dev.index.spareBlockOf(3)}`]);
  });
});

describe('only disk errors are disk errors', () => {
  it('recognises I/O errors by code, including what FaultDevice and GoneDevice throw', () => {
    for (const code of ['EIO', 'ENXIO', 'ENODEV', 'EREMOTEIO', 'ENOMEDIUM', 'ENODATA', 'EILSEQ', 'EBADMSG', 'ETIMEDOUT']) {
      expect(DISK_ERROR_CODES.has(code)).toBe(true);
      expect(isDiskError(Object.assign(new Error(code), { code }))).toBe(true);
      expect(isDiskError(new RemapfsError('read', 'x', Object.assign(new Error(code), { code })))).toBe(true);
    }
    expect(isDiskError(ioError('read', 'x'))).toBe(true);
    let gone: unknown;
    try {
      new GoneDevice('g', B, 'gone').read();
    } catch (err) {
      gone = err;
    }
    expect(isDiskError(gone)).toBe(true);
    for (const err of [new TypeError('x'), new RangeError('y'), new RemapfsError('read', 'x', 'beyond the end of the device'), Object.assign(new Error('e'), { code: 'EINVAL' }), Object.assign(new Error('e'), { code: 'EBADF' }), 'EIO', undefined]) {
      expect(isDiskError(err)).toBe(false);
    }
    expect(isKnownFailure(new RemapfsError('remap', 'x', 'spare pool exhausted'))).toBe(true);
    expect(isKnownFailure(new TypeError('x'))).toBe(false);
  });

  it('a device that throws a TypeError causes no remap, no pending block and no retry; the same error propagates', () => {
    for (const op of ['read', 'write'] as const) {
      const t = setup();
      const bug = new TypeError(`bug in ${op}`);
      t.main.throwOn = (o) => (o === op ? bug : undefined);
      let caught: unknown;
      try {
        if (op === 'read') t.dev.read(Buffer.alloc(2 * B), 110 * B);
        else t.dev.write(Buffer.alloc(2 * B, 1), 110 * B);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBe(bug);
      expect(t.journal.remaps).toEqual([]);
      expect(t.index.remappedCount).toBe(0);
      expect(t.index.pendingCount).toBe(0);
      expect(t.log.filter((l) => l.startsWith(`main ${op}`))).toHaveLength(1);
      expect(op === 'read' ? t.dev.counters.readErrors : t.dev.counters.writeErrors).toBe(1);
      expect(t.dev.counters.mainReadErrors + t.dev.counters.mainWriteErrors).toBe(0);
    }
  });

  it('the same device failing with EIO does remap (the control case)', () => {
    const t = setup();
    t.main.throwOn = (o, off) => (o === 'write' && off === 110 * B ? ioError('write', 'main') : undefined);
    t.dev.write(Buffer.alloc(B, 1), 110 * B);
    expect(t.index.spareBlockOf(110)).toBeGreaterThanOrEqual(0);
  });

  it('a TypeError from the spare during a remap retires no spare block and propagates', () => {
    const t = setup();
    t.spare.throwOn = (o) => (o === 'write' ? new TypeError('spare bug') : undefined);
    expect(() => t.dev.remapBlock(5, 'manual')).toThrow('spare bug');
    expect(t.journal.retired).toEqual([]);
    expect(t.index.retiredBlocks).toBe(0);
    expect(t.index.spareBlockOf(5)).toBe(-1);
  });

  it('a weak block whose proactive remap hits a bug propagates the bug instead of logging it', () => {
    const t = setup();
    t.mainFault.flakySectors.set(120 * 8, 1);
    t.spare.throwOn = (o) => (o === 'write' ? new TypeError('spare bug') : undefined);
    expect(() => t.dev.read(Buffer.alloc(B), 120 * B)).toThrow('spare bug');
  });

  it('the daemon logs a failure that is not a disk error as a bug, with where it was thrown', () => {
    expect(failureLine('read', 'p', ioError('read', 'main sector 8'))).toBe('remapfs: read p: read main sector 8: EIO: i/o error');
    expect(failureLine('write', 'p', new RemapfsError('write database', '/db', 'the database file was deleted'))).toMatch(/^remapfs: write p: write database/);
    const line = failureLine('read', 'p', new TypeError('x is not a function'));
    expect(line).toMatch(/^remapfs: bug: read p: TypeError: x is not a function \(at /);
  });
});

describe('evacuation tracking', () => {
  it('stacking turns writesSlow on and removing turns it off; it records written blocks and passes everything through', () => {
    const t = setup();
    expect(t.mirror.writesSlow).toBe(false);
    const tracking = new EvacTracking(t.dev);
    expect(t.mirror.writesSlow).toBe(true);
    expect(t.mirror.fastPath(0, 1, true)).toBe('slow');
    expect(t.mirror.fastPath(0, 1, false)).toBe('fast');
    expect(tracking.sizeBytes).toBe(t.dev.sizeBytes);
    expect(tracking.blockSize).toBe(B);
    tracking.write(Buffer.alloc(B + 10, 3), 5 * B - 5);
    tracking.write(Buffer.alloc(1, 4), 2 * B);
    const back = Buffer.alloc(B);
    tracking.read(back, 5 * B);
    expect(back[0]).toBe(3);
    expect(t.dev.counters.writeOps).toBe(2);
    expect(tracking.take()).toEqual([2, 4, 5, 6]);
    expect(tracking.take()).toEqual([]);
    tracking.remove();
    tracking.remove();
    expect(t.mirror.writesSlow).toBe(false);
    expect(t.log.filter((l) => l.startsWith('writesSlow'))).toEqual(['writesSlow true', 'writesSlow false']);
  });

  it('records a block whose write fails, so the catch-up copies it again', () => {
    const t = setup();
    const tracking = new EvacTracking(t.dev);
    t.main.throwOn = () => new TypeError('bug');
    expect(() => tracking.write(Buffer.alloc(B), 8 * B)).toThrow('bug');
    expect(tracking.take()).toEqual([8]);
  });
});
