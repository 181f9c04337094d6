/**
 * The verdict of one run: issue 15's targets, each checked against this run's numbers, so that "every target in
 * one run" is read off the report, not worked out by hand. Pure: reads samples and results only.
 *
 * Ratios are the tables' (Samples.ratio: the median of the per-round ratios). A target whose numbers are missing
 * (an engine that did not serve, a cell left out with BENCH_CELLS, a phase not run) counts as missed, never as met.
 * The disk targets apply to a disk directory only; on tmpfs the one tmpfs target (random 4 KiB at QD32, c/a ≥ 0.5)
 * is checked instead. The 1M-entry targets apply to both. d/c and e/c come from the same-image phase when it ran
 * (one main image for c, d and e: phase-same.ts), else from the stacks phase (d and e on image files of their own).
 */
import { type Cell, CELLS } from './config.js';
import type { Samples } from './stats.js';
import { rel } from './stats.js';

export interface TargetCheck {
  what: string;
  measured: number;
  bound: number;
  /** true: measured ≥ bound is met; false: measured ≤ bound. */
  atLeast: boolean;
}

export interface ScaleResult {
  startSeconds: number;
  rssMiB: number;
  /** Per cell: the 1M-entry pair's throughput over the pair's without remaps. */
  ratios: Array<{ cell: string; ratio: number }>;
}

export const met = (t: TargetCheck): boolean => Number.isFinite(t.measured) && (t.atLeast ? t.measured >= t.bound : t.measured <= t.bound);

const C = 'c.native';

/** The same-image phase's stacks (phase-same.ts): one pair with no remaps, 1% remapped, and that while scanning. */
export const SAME_STACKS = { c: 'c.same', d: 'd.same', e: 'e.same' } as const;

/** c/a's bound per cell on a disk: 1 MiB 0.9, random 4 KiB at QD32 0.8, at QD1 0.6. */
function diskBound(cell: Cell): number {
  if (cell.bs === '1M') return 0.9;
  return cell.depth >= 32 ? 0.8 : 0.6;
}

export interface TargetInputs {
  values: Samples;
  cpuPerGiB: Samples;
  inMemory: boolean;
  /** Whether the stacks phase ran (its targets are listed only then). */
  stacks: boolean;
  scale: ScaleResult | undefined;
  /** The cells the run measured. */
  cells?: readonly Cell[];
}

export function targetChecks(x: TargetInputs): TargetCheck[] {
  const cells = x.cells ?? CELLS;
  const out: TargetCheck[] = [];
  const ratio = (s: Samples, a: string, b: string, cell: Cell) => (s.has(a) && s.has(b) ? s.ratio(a, b, cell.name) : NaN);
  if (x.stacks && x.inMemory) {
    for (const cell of cells.filter((c) => c.depth >= 32)) out.push({ what: `tmpfs: ${cell.name}: c/a`, measured: ratio(x.values, C, 'a', cell), bound: 0.5, atLeast: true });
  } else if (x.stacks) {
    for (const cell of cells) out.push({ what: `${cell.name}: c/a`, measured: ratio(x.values, C, 'a', cell), bound: diskBound(cell), atLeast: true });
    const same = x.values.has(SAME_STACKS.c);
    const [c, d, e, where] = same ? [SAME_STACKS.c, SAME_STACKS.d, SAME_STACKS.e, ', same image'] : [C, 'd.native', 'e.native', ''];
    for (const cell of cells) out.push({ what: `${cell.name}: d/c (1% remapped${where})`, measured: ratio(x.values, d, c, cell), bound: 0.95, atLeast: true });
    for (const cell of cells) out.push({ what: `${cell.name}: e/c (scanning${where})`, measured: ratio(x.values, e, c, cell), bound: 0.9, atLeast: true });
    for (const cell of cells) out.push({ what: `${cell.name}: daemon CPU per GiB, native / fuse-native`, measured: ratio(x.cpuPerGiB, C, 'c.fuse-native', cell), bound: 1 / 3, atLeast: false });
  }
  if (x.scale) {
    out.push({ what: '1M entries: daemon start-up, s', measured: x.scale.startSeconds, bound: 3, atLeast: false });
    out.push({ what: '1M entries: daemon RSS, MB', measured: x.scale.rssMiB, bound: 200, atLeast: false });
    for (const r of x.scale.ratios) out.push({ what: `1M entries: ${r.cell}: 1M entries / none`, measured: r.ratio, bound: 0.95, atLeast: true });
  }
  return out;
}

function shown(t: TargetCheck): string {
  if (!Number.isFinite(t.measured)) return 'not measured';
  if (t.bound >= 100) return t.measured.toFixed(0);
  return t.bound >= 3 ? t.measured.toFixed(2) : rel(t.measured);
}

function bound(t: TargetCheck): string {
  const b = t.bound === 1 / 3 ? '1/3' : String(t.bound);
  return `${t.atLeast ? '≥' : '≤'} ${b}`;
}

/** The verdict table and its summary line; nothing when no target applies to what ran. */
export function targetsTable(checks: readonly TargetCheck[], partial: boolean): string[] {
  if (!checks.length) return [];
  const missed = checks.filter((t) => !met(t));
  const lines = ['| target (native engine) | this run | bound | met |', '|---|---:|---:|---|'];
  for (const t of checks) lines.push(`| ${t.what} | ${shown(t)} | ${bound(t)} | ${met(t) ? 'yes' : '**no**'} |`);
  const scope = partial ? ' (a partial run: BENCH_CELLS or BENCH_PHASES left parts out)' : '';
  lines.push(
    '',
    `Targets met in this run: ${checks.length - missed.length} of ${checks.length}${scope}.` + (missed.length ? ` Missed: ${missed.map((t) => t.what).join('; ')}.` : ''),
    '',
  );
  return lines;
}
