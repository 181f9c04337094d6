/** Range splitting (pure), as a table of cases. */
import { RunList, splitRange, type SpareLookup } from '../../lib/remap/split.js';

function lookup(map: Record<number, number>): SpareLookup {
  const m = new Map(Object.entries(map).map(([k, v]) => [Number(k), v]));
  return { remappedCount: m.size, spareBlockOf: (b) => m.get(b) ?? -1 };
}

type Run = { target: 'main' | 'spare'; bufOffset: number; byteLength: number; deviceOffset: number };
const main = (bufOffset: number, byteLength: number, deviceOffset: number): Run => ({ target: 'main', bufOffset, byteLength, deviceOffset });
const spare = (bufOffset: number, byteLength: number, deviceOffset: number): Run => ({ target: 'spare', bufOffset, byteLength, deviceOffset });

const B = 4096;
// A 16-block device; blocks 3, 4 and 5 remapped to spare blocks 20, 21, 40; block 15 (the last) to 7.
const REMAPS = { 3: 20, 4: 21, 5: 40, 15: 7 };

const cases: Array<[string, number, number, Record<number, number>, Run[]]> = [
  ['zero length', 100, 0, REMAPS, []],
  ['no remaps: one main run, no lookups', 12345, 50000, {}, [main(0, 50000, 12345)]],
  ['aligned unremapped blocks merge', 0, 3 * B, REMAPS, [main(0, 3 * B, 0)]],
  ['first block, partial', 10, 100, REMAPS, [main(0, 100, 10)]],
  ['unaligned range within one remapped block', 3 * B + 100, 50, REMAPS, [spare(0, 50, 20 * B + 100)]],
  ['consecutive spare blocks merge', 3 * B, 2 * B, REMAPS, [spare(0, 2 * B, 20 * B)]],
  ['non-consecutive spare blocks split', 4 * B, 2 * B, REMAPS, [spare(0, B, 21 * B), spare(B, B, 40 * B)]],
  [
    'crossing unremapped, remapped, unremapped, unaligned at both ends',
    2 * B + 1000,
    5 * B,
    REMAPS,
    [main(0, B - 1000, 2 * B + 1000), spare(B - 1000, 2 * B, 20 * B), spare(3 * B - 1000, B, 40 * B), main(4 * B - 1000, B + 1000, 6 * B)],
  ],
  ['last block of the device (remapped), to the end', 15 * B, B, REMAPS, [spare(0, B, 7 * B)]],
  ['ending exactly at the end of the device', 14 * B + 5, B + B - 5, REMAPS, [main(0, B - 5, 14 * B + 5), spare(B - 5, B, 7 * B)]],
  ['one byte at the end of a remapped block', 6 * B - 1, 1, REMAPS, [spare(0, 1, 41 * B - 1)]],
  ['the whole device', 0, 16 * B, REMAPS, [main(0, 3 * B, 0), spare(3 * B, 2 * B, 20 * B), spare(5 * B, B, 40 * B), main(6 * B, 9 * B, 6 * B), spare(15 * B, B, 7 * B)]],
];

describe('splitRange', () => {
  it.each(cases)('%s', (_name, byteOffset, byteLength, remaps, want) => {
    const out = new RunList();
    expect(splitRange(byteOffset, byteLength, B, lookup(remaps), out)).toBe(want.length);
    expect(out.toArray()).toEqual(want);
    // Runs tile the request exactly.
    let next = 0;
    for (const r of out.toArray()) {
      expect(r.bufOffset).toBe(next);
      next += r.byteLength;
    }
    expect(next).toBe(byteLength);
  });

  it('reuses its arrays and grows past the initial capacity', () => {
    const out = new RunList(4);
    const every = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [2 * i, 1000 + 3 * i]));
    const n = splitRange(0, 200 * 512, 512, lookup(every), out);
    expect(n).toBe(200);
    expect(out.toArray()[199]).toEqual(main(199 * 512, 512, 199 * 512));
    expect(splitRange(0, 512, 512, lookup(every), out)).toBe(1);
    expect(out.count).toBe(1);
  });
});
