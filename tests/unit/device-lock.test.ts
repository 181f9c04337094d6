/** DeviceLock: one holder per device, whatever path names it; released on release(). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DeviceBusyError, DeviceLock, lockPaths } from '../../lib/block/device-lock.js';
import { extentsOverlap } from '../../lib/block/alias.js';

describe('DeviceLock', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-lock-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses a second holder of the same file, also through a symlink, naming the holder; frees it on release', () => {
    const img = path.join(dir, 'a.img');
    fs.writeFileSync(img, Buffer.alloc(4096));
    fs.symlinkSync(img, path.join(dir, 'link'));
    const first = DeviceLock.acquire([img], { op: 'test', object: 'a', waitMs: 0 });
    let caught: unknown;
    try {
      DeviceLock.acquire([path.join(dir, 'link')], { op: 'test', object: 'b', waitMs: 100 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DeviceBusyError);
    expect((caught as Error).message).toMatch(/a\.img is in use by this process/);
    first.release();
    const again = DeviceLock.acquire([path.join(dir, 'link')], { op: 'test', object: 'b', waitMs: 0 });
    expect(again.held).toBe(true);
    again.release();
  });

  it('takes nothing when one of several devices is busy (all or nothing)', () => {
    const a = path.join(dir, 'a.img');
    const b = path.join(dir, 'b.img');
    fs.writeFileSync(a, '');
    fs.writeFileSync(b, '');
    const holdB = DeviceLock.acquire([b], { op: 'test', object: 'b', waitMs: 0 });
    expect(() => DeviceLock.acquire([a, b], { op: 'test', object: 'ab', waitMs: 0 })).toThrow(DeviceBusyError);
    const holdA = DeviceLock.acquire([a], { op: 'test', object: 'a', waitMs: 0 }); // a was not left locked
    holdA.release();
    holdB.release();
    expect(lockPaths([a, a, b])).toEqual([a, b].map((p) => fs.realpathSync(p)).sort());
  });

  it('extents overlap only on the same base and a shared byte', () => {
    const e = (baseKey: string, startByte: number, endByte: number) => ({ baseKey, startByte, endByte, chain: [] });
    expect(extentsOverlap(e('f1:2', 0, Infinity), e('f1:2', 4096, 8192))).toBe(true);
    expect(extentsOverlap(e('f1:2', 0, 4096), e('f1:2', 4096, 8192))).toBe(false);
    expect(extentsOverlap(e('f1:2', 0, Infinity), e('f1:3', 0, Infinity))).toBe(false);
  });
});
