/** The bench's pure parts: where the images go, which engines run, and the numbers it reports. */
import { chosenCells, readConfig } from '../../scripts/bench/config.js';
import { chooseEngine } from '../../scripts/bench/engines.js';
import { median, rel, Samples, seededRandom, shuffled, spread } from '../../scripts/bench/stats.js';
import { imageTable, mainTable, roundsTable } from '../../scripts/bench/tables.js';
import type { Measurer } from '../../scripts/bench/measure.js';
import { match } from '../helpers/match.js';

describe('bench configuration', () => {
  it('measures every cell unless BENCH_CELLS names some, and refuses a name it does not know', () => {
    expect(chosenCells({}).map((c) => c.name)).toEqual(['seq read 1M', 'seq write 1M', 'rand read 4K QD1', 'rand read 4K QD32', 'rand write 4K QD1', 'rand write 4K QD32']);
    expect(chosenCells({ BENCH_CELLS: 'rand read 4K QD1, seq read 1M' }).map((c) => c.name)).toEqual(['seq read 1M', 'rand read 4K QD1']);
    expect(() => chosenCells({ BENCH_CELLS: 'seq read 2M' })).toThrow(/BENCH_CELLS: unknown cell seq read 2M/);
  });

  it('puts the images on /var/tmp by default, and on a private tmpfs when asked', () => {
    expect(readConfig([], {}).images).toEqual({ kind: 'dir', path: '/var/tmp' });
    expect(readConfig(['--tmpfs'], {}).images).toEqual({ kind: 'tmpfs' });
    expect(readConfig([], { BENCH_DIR: 'tmpfs' }).images).toEqual({ kind: 'tmpfs' });
    expect(readConfig(['--dir', '/srv/disk/'], { BENCH_DIR: '/elsewhere' }).images).toEqual({ kind: 'dir', path: '/srv/disk' });
  });

  it('runs both engines by default, native first, and refuses an unknown one', () => {
    expect(readConfig([], {}).engines).toEqual(['native', 'fuse-native']);
    expect(readConfig([], { BENCH_ENGINES: 'fuse-native' }).engines).toEqual(['fuse-native']);
    expect(() => readConfig([], { BENCH_ENGINES: 'kernel' })).toThrow(/unknown engine kernel/);
    expect(() => readConfig([], { BENCH_RUNS: '0' })).toThrow(/BENCH_RUNS/);
  });

  it('skips the native engine with a reason while `mount --engine` does not exist, and passes --engine once it does', () => {
    expect(chooseEngine('native', new Set(['--db']))).toEqual({ engine: 'native', available: false, why: match.containing('--engine') });
    expect(chooseEngine('fuse-native', new Set(['--db']))).toEqual({ engine: 'fuse-native', available: true, mountArgs: [] });
    expect(chooseEngine('native', new Set(['--engine']))).toEqual({ engine: 'native', available: true, mountArgs: ['--engine', 'native'] });
  });
});

describe('bench numbers', () => {
  it('medians, spreads and ratios', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(spread([90, 100, 110])).toBe('20%');
    expect(rel(1 / 4)).toBe('0.250');
    expect(rel(1 / NaN)).toBe('-');
    expect(rel(1 / 0)).toBe('-');
  });

  it('shuffles the same way for the same seed, keeping every element', () => {
    const a = shuffled([1, 2, 3, 4, 5, 6], seededRandom(42));
    expect(shuffled([1, 2, 3, 4, 5, 6], seededRandom(42))).toEqual(a);
    expect([...a].sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps every sample per stack and cell', () => {
    const s = new Samples();
    s.add('c', 'seq read 1M', 10);
    s.add('c', 'seq read 1M', 30);
    s.add('a', 'seq read 1M', 5);
    expect(s.all('c', 'seq read 1M')).toEqual([10, 30]);
    expect(s.median('c', 'seq read 1M')).toBe(20);
    expect(s.median('d', 'seq read 1M')).toBeNaN();
  });

  it('takes ratios per round when both stacks ran once per round, else the ratio of the medians', () => {
    const s = new Samples();
    // The host slows both stacks in rounds 2 and 3: per round c/a is 0.8, 0.8, 0.9; the ratio of the medians says 0.9.
    for (const [a, c] of [[100, 80], [50, 40], [60, 54]]) {
      s.add('a', 'k', a as number);
      s.add('c', 'k', c as number);
    }
    expect(s.ratio('c', 'a', 'k')).toBeCloseTo(0.8, 9);
    expect(s.median('c', 'k') / s.median('a', 'k')).toBeCloseTo(0.9, 9);
    s.add('b0', 'k', 200); // one run only: not paired
    expect(s.ratio('c', 'b0', 'k')).toBeCloseTo(54 / 200, 9);
    expect(s.ratioRange('c', 'a', 'k')).toBe('0.80-0.90');
    expect(s.ratioRange('c', 'b0', 'k')).toBe('-');
    expect(s.ratio('x', 'a', 'k')).toBeNaN();
    const drift = new Samples();
    for (const [a, c] of [[100, 80], [300, 240], [200, 160], [120, 96], [400, 320]]) {
      drift.add('a', 'k', a as number);
      drift.add('c', 'k', c as number);
    }
    expect(drift.ratio('c', 'a', 'k')).toBeCloseTo(0.8, 9);
    drift.add('c', 'k', 1); // an extra run of one stack: the rounds no longer pair, so the medians are used
    expect(drift.ratio('c', 'a', 'k')).toBeCloseTo(128 / 200, 9);
  });

  it("d/c's image control divides out how much d's image file alone differs from c's", () => {
    const values = new Samples();
    // d's file is 20% slower on its own (ad/a 0.8); d/c 0.76, so the remaps cost 0.95 of it.
    for (const [stack, x] of [['a', 1000], ['ad', 800], ['c.native', 500], ['d.native', 380]] as const) values.add(stack, 'seq read 1M', x);
    const lines = imageTable({ values } as unknown as Measurer, 'native');
    const row = lines.find((l) => l.startsWith('| seq read 1M |'));
    expect(row).toBe('| seq read 1M | MiB/s | 1000 | 800 | 0.800 | 0.760 | 0.950 |');
    // per round: (d/c) / (ad/a) of each round, then the median
    for (const [stack, x] of [['a', 500], ['ad', 500], ['c.native', 500], ['d.native', 500]] as const) values.add(stack, 'seq read 1M', x);
    for (const [stack, x] of [['a', 1000], ['ad', 1000], ['c.native', 400], ['d.native', 360]] as const) values.add(stack, 'seq read 1M', x);
    const again = imageTable({ values } as unknown as Measurer, 'native').find((l) => l.startsWith('| seq read 1M |'));
    expect(again).toBe('| seq read 1M | MiB/s | 1000 | 800 | 1.000 | 0.900 | 0.950 |');
  });

  it('prints each target ratio with its per-round range', () => {
    const values = new Samples();
    for (const [a, c, d, e] of [[100, 80, 76, 70], [50, 45, 45, 40], [100, 70, 70, 70]]) {
      for (const [stack, x] of [['a', a], ['c.native', c], ['d.native', d], ['e.native', e]] as const) values.add(stack, 'seq read 1M', x as number);
    }
    const m = { values } as unknown as Measurer;
    const main = mainTable(m, ['native'], 3).find((l) => l.startsWith('| seq read 1M |'));
    expect(main).toBe('| seq read 1M | MiB/s | native | 100 | - | - | 70 | 70 | 70 | 0.800 | 1.000 | 0.889 | - | 50% | 50% |');
    const rounds = roundsTable(m, ['native']).find((l) => l.startsWith('| seq read 1M |'));
    expect(rounds).toBe('| seq read 1M | native | 0.70-0.90 | 0.95-1.00 | 0.88-1.00 |');
  });
});
