/**
 * The scale phase: a pair with 1,000,000 remap entries against one with none, on one engine. Targets: daemon
 * start-up ≤ 3 s, RSS ≤ 200 MB, and ≥ 0.95 of the throughput of the pair without remaps.
 *
 * Both pairs have the same geometry (10 GiB main with its first GiB filled, 4.5 GiB spare), and fio uses the first
 * GiB, where the 1M entries are not. Two image files still differ on the disk: the kernel loop device on each
 * main image, measured the same way before the daemon starts, is the control ('loop-1M' / 'loop-none').
 * Ratios are paired by round, as in the stacks phase (Samples.ratio): both pairs run once per round.
 */
import * as path from 'path';
import { type Cell, CELLS, GiB } from './config.js';
import { type BenchContext, startRemapfs, Teardown } from './context.js';
import { fio } from './measure.js';
import { filledPair, injectRemaps } from './images.js';
import { median, rel, seededRandom, shuffled } from './stats.js';
import { rssMiB } from './system.js';
import { attach, type Stack } from './stacks.js';
import type { ScaleResult } from './targets.js';

const SCALE_CELLS = CELLS.filter((c) => c.rw === 'read' || c.depth === 32);

/** Start-up time and RSS (after a fio run) of a daemon serving the 1M-entry pair, once per run. */
async function startups(ctx: BenchContext, db: string, mnt: string, mountArgs: readonly string[]): Promise<{ startSeconds: number[]; rss: number[] }> {
  const startSeconds: number[] = [];
  const rss: number[] = [];
  for (let run = 0; run < ctx.cfg.runs; run++) {
    const teardown = new Teardown();
    try {
      const ts = Date.now();
      const d = await startRemapfs(ctx, mnt, db, mountArgs);
      startSeconds.push((Date.now() - ts) / 1000);
      teardown.add(async () => {
        ctx.lab.ok(['--db', db, 'unmount', mnt]);
        await d.exited;
      });
      fio(attach(ctx, teardown, path.join(mnt, 'big')), SCALE_CELLS[SCALE_CELLS.length - 1] as Cell, ctx.cfg);
      rss.push(rssMiB(d.child.pid as number));
    } finally {
      await teardown.run();
    }
  }
  return { startSeconds, rss };
}

/** Requests of a served pair that a ring worker parked because a device call would have waited, per request (native engine). */
function waitRetriesPerRequest(ctx: BenchContext, db: string, name: string): string {
  const s = JSON.parse(ctx.lab.ok(['--db', db, 'status', name, '--json'])) as { engineCounters?: { readOps: number; writeOps: number; waitRetries?: number } };
  const c = s.engineCounters;
  return c?.waitRetries === undefined ? '-' : (c.waitRetries / Math.max(1, c.readOps + c.writeOps)).toFixed(4);
}

/** One daemon serves both pairs, measured interleaved in a shuffled order (stacks '1M' and 'none'). */
async function throughput(ctx: BenchContext, db: string, mnt: string, mountArgs: readonly string[]): Promise<string[]> {
  const teardown = new Teardown();
  try {
    const proc = await startRemapfs(ctx, mnt, db, mountArgs);
    teardown.add(async () => {
      ctx.lab.ok(['--db', db, 'unmount', mnt]);
      await proc.exited;
    });
    const stacks: Stack[] = [
      { stack: '1M', dev: attach(ctx, teardown, path.join(mnt, 'big')), proc, group: 'compared' },
      { stack: 'none', dev: attach(ctx, teardown, path.join(mnt, 'none')), proc, group: 'compared' },
    ];
    const random = seededRandom(7);
    for (let run = 0; run < ctx.cfg.runs; run++) {
      for (const cell of SCALE_CELLS) for (const st of shuffled(stacks, random)) ctx.measurer.measure(st, cell);
    }
    return ['big', 'none'].map((name) => waitRetriesPerRequest(ctx, db, name));
  } finally {
    await teardown.run();
  }
}

/** The kernel loop device on each pair's main image, interleaved like the pairs (nothing else holds them yet). */
async function loopControl(ctx: BenchContext, mains: { big: string; none: string }): Promise<void> {
  const teardown = new Teardown();
  try {
    const stacks: Stack[] = [
      { stack: 'loop-1M', dev: attach(ctx, teardown, mains.big), proc: undefined, group: 'compared' },
      { stack: 'loop-none', dev: attach(ctx, teardown, mains.none), proc: undefined, group: 'compared' },
    ];
    const random = seededRandom(11);
    for (let run = 0; run < ctx.cfg.runs; run++) {
      for (const cell of SCALE_CELLS) for (const st of shuffled(stacks, random)) ctx.measurer.measure(st, cell);
    }
  } finally {
    await teardown.run();
  }
}

/** Runs the phase and returns its numbers for the targets (undefined when BENCH_CELLS leaves it no cell). */
export async function scalePhase(ctx: BenchContext, engine: string, mountArgs: readonly string[]): Promise<ScaleResult | undefined> {
  if (SCALE_CELLS.length === 0) {
    ctx.log('bench: scale phase skipped: BENCH_CELLS names none of its cells');
    return undefined;
  }
  // Their own database, so the daemon serves these two pairs only.
  const db = ctx.lab.path('scale.db');
  const none = filledPair(ctx.lab, ctx.images.dir, 'none', 10 * GiB, 4.5 * GiB, db);
  const big = filledPair(ctx.lab, ctx.images.dir, 'big', 10 * GiB, 4.5 * GiB, db);
  await loopControl(ctx, { big: big.main, none: none.main });
  const t0 = Date.now();
  // Scattered over the blocks beyond the first GiB, which fio uses: the index holds 1M entries, the measured range none.
  injectRemaps(db, 'big', Array.from({ length: 1_000_000 }, (_, i) => GiB / 4096 + 2 * i));
  ctx.log(`bench: injected 1,000,000 entries in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const mnt = ctx.lab.mkdir('mnt-scale');
  const { startSeconds, rss } = await startups(ctx, db, mnt, mountArgs);
  const retries = await throughput(ctx, db, mnt, mountArgs);
  const v = ctx.measurer.values;
  ctx.lines.push(`| scale: 1,000,000 entries (${engine}) | median | target |`, `|---|---:|---:|`);
  ctx.lines.push(`| daemon start-up (spawn to ready; runs: ${startSeconds.map((x) => x.toFixed(2)).join(', ')} s) | ${median(startSeconds).toFixed(2)} s | ≤ 3 s |`);
  ctx.lines.push(`| daemon RSS after fio | ${median(rss).toFixed(0)} MB | ≤ 200 MB |`);
  for (const cell of SCALE_CELLS) {
    const [bigValue, noneValue] = [v.median('1M', cell.name), v.median('none', cell.name)];
    const [loopBig, loopNone] = [v.median('loop-1M', cell.name), v.median('loop-none', cell.name)];
    ctx.lines.push(`| ${cell.name}: 1M entries / none | ${rel(v.ratio('1M', 'none', cell.name))} (${bigValue.toFixed(0)} / ${noneValue.toFixed(0)}) | ≥ 0.95 |`);
    ctx.lines.push(`| ${cell.name}: control, the kernel loop device on the same two images | ${rel(v.ratio('loop-1M', 'loop-none', cell.name))} (${loopBig.toFixed(0)} / ${loopNone.toFixed(0)}) | |`);
  }
  ctx.lines.push(`| would-wait retries per request (all cells): 1M entries / none | ${retries.join(' / ')} | |`);
  ctx.lines.push('', 'Values: medians of the runs. Ratios: the median of the per-round ratios (both pairs ran once per round).', '');
  return { startSeconds: median(startSeconds), rssMiB: median(rss), ratios: SCALE_CELLS.map((cell) => ({ cell: cell.name, ratio: v.ratio('1M', 'none', cell.name) })) };
}
