import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Fuse from 'fuse-native';
import { type DataOp, installLeanDispatch, makeHandler, type NativeSignal } from '../../lib/fs/lean-dispatch.js';

describe('lean dispatch handler', () => {
  const cases: Array<[string, number, number, number]> = [
    ['offset 0', 0, 0, 0],
    ['offset in the low word only', 4096, 0, 4096],
    ['the largest low word', 0xfffff000, 0, 4294963200],
    ['4 GiB + 4 KiB', 4096, 1, 4294971392],
    ['a high word above 1', 0x80000000, 3, 3 * 4294967296 + 0x80000000],
  ];
  it.each(cases)('passes %s as one byte offset and answers with the op result', (_name, low, high, byteOffset) => {
    const seen: number[] = [];
    const answers: Array<[unknown, number, number, ArrayBufferLike]> = [];
    const op: DataOp = (_p, _fd, _buf, byteLength, off) => {
      seen.push(off);
      return byteLength;
    };
    const signal: NativeSignal = (h, result, unused, ab) => answers.push([h, result, unused, ab]);
    const buf = Buffer.alloc(4096);
    makeHandler(op, signal)('handle', 7, '/disk', 3, buf, 4096, low, high);
    expect(seen).toEqual([byteOffset]);
    expect(answers).toEqual([['handle', 4096, 0, buf.buffer]]);
  });

  it('passes a negative errno through and answers EIO when the op throws', () => {
    const results: number[] = [];
    const signal: NativeSignal = (_h, result) => results.push(result);
    const buf = Buffer.alloc(512);
    makeHandler(() => -28, signal)('h', 0, '/x', 1, buf, 512, 0, 0);
    makeHandler(() => {
      throw new Error('bug');
    }, signal)('h', 0, '/x', 1, buf, 512, 0, 0);
    expect(results).toEqual([-28, -5]);
  });
});

describe('installLeanDispatch', () => {
  it("replaces exactly the read and write handlers of a real fuse-native instance", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-lean-'));
    try {
      const fuse = new Fuse(dir, { read: () => undefined, write: () => undefined }, { timeout: false });
      const handlers = (fuse as unknown as { _handlers: unknown[] })._handlers;
      const before = [...handlers];
      expect(installLeanDispatch(fuse, { read: () => 0, write: () => 0 })).toBeUndefined();
      const changed = handlers.map((h, i) => (h === before[i] ? -1 : i)).filter((i) => i >= 0);
      expect(changed).toHaveLength(2);
      for (const i of changed) expect(typeof handlers[i]).toBe('function');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves an object without a handler table alone and says why', () => {
    expect(installLeanDispatch({}, { read: () => 0, write: () => 0 })).toMatch(/no handler table/);
  });
});
