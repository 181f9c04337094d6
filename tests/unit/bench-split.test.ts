/** The bench's replay of the native engine's device calls (scripts/bench/split-pattern.ts). */
import { ONE_PERCENT_SCATTERED } from '../../scripts/bench/images.js';
import { iolog, replayDepth, requestCalls, sequentialCalls, tableLookup } from '../../scripts/bench/split-pattern.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const B = 4 * KiB;

describe('the engine device calls the bench replays', () => {
  it('makes one main call of a request with no remaps', () => {
    expect(requestCalls(3 * MiB, MiB, B, tableLookup(new Map()))).toEqual([{ device: 'main', byteOffset: 3 * MiB, bytes: MiB }]);
  });

  it('splits main around a remapped block and joins spare runs that continue each other', () => {
    const lookup = tableLookup(
      new Map([
        [2, 50],
        [5, 51],
      ]),
    );
    expect(requestCalls(0, 8 * B, B, lookup)).toEqual([
      { device: 'main', byteOffset: 0, bytes: 2 * B },
      { device: 'spare', byteOffset: 50 * B, bytes: 2 * B },
      { device: 'main', byteOffset: 3 * B, bytes: 2 * B },
      { device: 'main', byteOffset: 6 * B, bytes: 2 * B },
    ]);
  });

  it('stops joining when the request has used its iovecs, as rt_chain does', () => {
    // blocks 1, 3, ..., 39 remapped to spare blocks 100..119: 20 spare runs that continue each other
    const lookup = tableLookup(new Map(Array.from({ length: 20 }, (_, i) => [2 * i + 1, 100 + i] as [number, number])));
    const calls = requestCalls(0, 40 * B, B, lookup);
    const spare = calls.filter((c) => c.device === 'spare');
    expect(calls.filter((c) => c.device === 'main')).toHaveLength(20);
    expect(spare.map((c) => c.bytes / B)).toEqual([16, 1, 1, 1, 1]);
    expect(spare.map((c) => c.byteOffset / B)).toEqual([100, 116, 117, 118, 119]);
  });

  it('makes about 4.6 calls per 1 MiB request with the bench d table, replayed at queue depth 18 for fio depth 4', () => {
    const table = new Map(ONE_PERCENT_SCATTERED.map((mainBlock, i) => [mainBlock, 1000 + i] as [number, number]));
    const calls = sequentialCalls(1023 * MiB, MiB, 1, B, tableLookup(table));
    const perRequest = calls.length / 1023;
    expect(perRequest).toBeGreaterThan(4.4);
    expect(perRequest).toBeLessThan(4.7);
    expect(calls.filter((c) => c.device === 'spare').reduce((s, c) => s + c.bytes, 0)).toBe(ONE_PERCENT_SCATTERED.filter((b) => b < 1023 * 256).length * B);
    expect(calls.reduce((s, c) => s + c.bytes, 0)).toBe(1023 * MiB);
    expect(replayDepth(calls.length, 1023, 4)).toBe(18);
    expect(replayDepth(1023, 1023, 4)).toBe(4);
  });

  it('writes fio iolog version 2 and refuses a path fio would split', () => {
    const text = iolog([{ device: 'spare', byteOffset: 8192, bytes: 4096 }], { main: '/x/m.img', spare: '/x/s.img' }, 'write');
    expect(text.split('\n')).toEqual(['fio version 2 iolog', '/x/m.img add', '/x/s.img add', '/x/m.img open', '/x/s.img open', '/x/s.img write 8192 4096', '/x/m.img close', '/x/s.img close', '']);
    expect(() => iolog([], { main: '/x/a b.img', spare: '/x/s.img' }, 'read')).toThrow(/white space/);
  });
});
