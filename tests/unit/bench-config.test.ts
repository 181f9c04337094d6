/** The bench's pure parts: where the images go, which engines run, and the numbers it reports. */
import { chosenCells, readConfig } from '../../scripts/bench/config.js';
import { chooseEngine } from '../../scripts/bench/engines.js';
import { median, rel, Samples, seededRandom, shuffled, spread } from '../../scripts/bench/stats.js';
import { imageTable, mainTable, roundsTable } from '../../scripts/bench/tables.js';
import { met, type ScaleResult, targetChecks, targetsTable } from '../../scripts/bench/targets.js';
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

describe('bench verdict', () => {
  const allCells = chosenCells({});
  /** Every stack the targets use, one run per round, with c/a, d/c, e/c and the CPU ratio given. */
  function run(ca: number, dc: number, ec: number, cpu: number): { values: Samples; cpuPerGiB: Samples } {
    const values = new Samples();
    const cpuPerGiB = new Samples();
    for (const cell of allCells) {
      for (const [stack, x] of [['a', 1000], ['c.native', 1000 * ca], ['d.native', 1000 * ca * dc], ['e.native', 1000 * ca * ec]] as const) values.add(stack, cell.name, x);
      cpuPerGiB.add('c.native', cell.name, 10 * cpu);
      cpuPerGiB.add('c.fuse-native', cell.name, 10);
    }
    return { values, cpuPerGiB };
  }
  const scale: ScaleResult = { startSeconds: 2.8, rssMiB: 190, ratios: [{ cell: 'seq read 1M', ratio: 1.01 }] };

  it('checks every disk target against its bound, each cell on its own', () => {
    const checks = targetChecks({ ...run(0.95, 0.96, 0.91, 0.3), inMemory: false, stacks: true, scale });
    expect(checks).toHaveLength(6 * 4 + 3);
    expect(checks.every(met)).toBe(true);
    // c/a 0.85 meets the QD32 (0.8) and QD1 (0.6) bounds, not the 1 MiB one (0.9)
    const slow = targetChecks({ ...run(0.85, 0.96, 0.91, 0.3), inMemory: false, stacks: true, scale: undefined });
    expect(slow.filter((t) => !met(t)).map((t) => t.what)).toEqual(['seq read 1M: c/a', 'seq write 1M: c/a']);
    // CPU is a bound from above: 0.34 of fuse-native's misses a third
    const cpu = targetChecks({ ...run(1, 1, 1, 0.34), inMemory: false, stacks: true, scale: undefined });
    expect(cpu.filter((t) => !met(t))).toHaveLength(6);
    expect(targetsTable(cpu, false).find((l) => l.includes('rand read 4K QD1: daemon CPU'))).toBe('| rand read 4K QD1: daemon CPU per GiB, native / fuse-native | 0.340 | ≤ 1/3 | **no** |');
  });

  it('takes d/c and e/c from the same-image phase when it ran', () => {
    const { values, cpuPerGiB } = run(1, 0.8, 0.8, 0.3); // d and e on files of their own: 0.8
    for (const cell of allCells) for (const [stack, x] of [['c.same', 500], ['d.same', 490], ['e.same', 470]] as const) values.add(stack, cell.name, x);
    const checks = targetChecks({ values, cpuPerGiB, inMemory: false, stacks: true, scale: undefined });
    const dc = checks.find((t) => t.what === 'seq read 1M: d/c (1% remapped, same image)');
    expect(dc?.measured).toBeCloseTo(0.98, 9);
    expect(checks.find((t) => t.what === 'seq read 1M: e/c (scanning, same image)')?.measured).toBeCloseTo(0.94, 9);
    expect(checks.every(met)).toBe(true);
  });

  it('counts a target without numbers as missed, and says when the run was partial', () => {
    const { values } = run(1, 1, 1, 0.3);
    const checks = targetChecks({ values, cpuPerGiB: new Samples(), inMemory: false, stacks: true, scale: { startSeconds: NaN, rssMiB: 150, ratios: [] } });
    const missed = checks.filter((t) => !met(t));
    expect(missed.map((t) => t.what)).toContain('1M entries: daemon start-up, s');
    expect(missed.filter((t) => t.what.includes('CPU'))).toHaveLength(6);
    const lines = targetsTable(checks, true);
    expect(lines.find((l) => l.includes('daemon start-up'))).toBe('| 1M entries: daemon start-up, s | not measured | ≤ 3 | **no** |');
    expect(lines.find((l) => l.startsWith('Targets met'))).toMatch(/^Targets met in this run: 19 of 26 \(a partial run: .*\)\. Missed: .*daemon start-up/);
  });

  it('on tmpfs checks only the tmpfs target (QD32 c/a ≥ 0.5) besides the 1M-entry ones', () => {
    const checks = targetChecks({ ...run(0.55, 0.5, 0.5, 0.9), inMemory: true, stacks: true, scale });
    expect(checks.map((t) => t.what)).toEqual(['tmpfs: rand read 4K QD32: c/a', 'tmpfs: rand write 4K QD32: c/a', '1M entries: daemon start-up, s', '1M entries: daemon RSS, MB', '1M entries: seq read 1M: 1M entries / none']);
    expect(checks.every(met)).toBe(true);
    expect(targetsTable(targetChecks({ ...run(1, 1, 1, 1), inMemory: true, stacks: false, scale: undefined }), false)).toEqual([]);
  });
});
