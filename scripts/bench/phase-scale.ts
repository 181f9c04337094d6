/**
 * The scale phase: a pair with 1,000,000 remap entries against one with none, on one engine. Targets: daemon
 * start-up ≤ 3 s, RSS ≤ 200 MB, and ≥ 0.95 of the throughput of the pair without remaps.
 */
import * as path from 'path';
import { type Cell, CELLS, GiB, MiB } from './config.js';
import { type BenchContext, startRemapfs, Teardown } from './context.js';
import { fio } from './measure.js';
import { filledPair, injectRemaps } from './images.js';
import { median, seededRandom, shuffled } from './stats.js';
import { rssMiB } from './system.js';
import { attach, type Stack } from './stacks.js';

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

/** One daemon serves both pairs, measured interleaved in a shuffled order (stacks '1M' and 'none'). */
async function throughput(ctx: BenchContext, db: string, mnt: string, mountArgs: readonly string[]): Promise<void> {
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
  } finally {
    await teardown.run();
  }
}

export async function scalePhase(ctx: BenchContext, engine: string, mountArgs: readonly string[]): Promise<void> {
  // Their own database, so the daemon serves these two pairs only.
  const db = ctx.lab.path('scale.db');
  filledPair(ctx.lab, ctx.images.dir, 'none', GiB, 64 * MiB, db);
  filledPair(ctx.lab, ctx.images.dir, 'big', 10 * GiB, 4.5 * GiB, db);
  const t0 = Date.now();
  // Scattered over the blocks beyond the first GiB, which fio uses: the index holds 1M entries, the measured range none.
  injectRemaps(db, 'big', Array.from({ length: 1_000_000 }, (_, i) => GiB / 4096 + 2 * i));
  ctx.log(`bench: injected 1,000,000 entries in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const mnt = ctx.lab.mkdir('mnt-scale');
  const { startSeconds, rss } = await startups(ctx, db, mnt, mountArgs);
  await throughput(ctx, db, mnt, mountArgs);
  const v = ctx.measurer.values;
  ctx.lines.push(`| scale: 1,000,000 entries (${engine}) | median | target |`, `|---|---:|---:|`);
  ctx.lines.push(`| daemon start-up (spawn to ready) | ${median(startSeconds).toFixed(2)} s | ≤ 3 s |`);
  ctx.lines.push(`| daemon RSS after fio | ${median(rss).toFixed(0)} MB | ≤ 200 MB |`);
  for (const cell of SCALE_CELLS) {
    const [big, none] = [v.median('1M', cell.name), v.median('none', cell.name)];
    ctx.lines.push(`| ${cell.name}: 1M entries / none | ${(big / none).toFixed(3)} (${big.toFixed(0)} / ${none.toFixed(0)}) | ≥ 0.95 |`);
  }
  ctx.lines.push('');
}
