/**
 * The options phase (BENCH_PHASES=options): the mount and loop-device options, on the passthrough (they act
 * on the kernel's side of FUSE, the same for every server): each variant against b's own setting,
 * interleaved in a shuffled order.
 */
import { CELLS, GiB, MiB } from './config.js';
import { type BenchContext, startPassthrough, Teardown } from './context.js';
import { filledPair } from './images.js';
import { attach, type Stack } from './stacks.js';
import { seededRandom, shuffled } from './stats.js';
import type { DaemonHandle } from '../../lib/lab/lab.js';

const VARIANTS: ReadonlyArray<{ stack: string; label: string; options: string; directIo: boolean }> = [
  { stack: 'ob', label: 'big_writes (b, remapfs)', options: 'big_writes', directIo: true },
  { stack: 'o-', label: 'no options (no big_writes)', options: '-', directIo: true },
  { stack: 'omr', label: 'big_writes,max_read=131072', options: 'big_writes,max_read=131072', directIo: true },
  { stack: 'omb', label: 'big_writes,max_background=64,congestion_threshold=48', options: 'big_writes,max_background=64,congestion_threshold=48', directIo: true },
  { stack: 'obuf', label: 'big_writes; loop --direct-io=off', options: 'big_writes', directIo: false },
];

async function variantStacks(ctx: BenchContext, teardown: Teardown, image: string): Promise<Stack[]> {
  const stacks: Stack[] = [];
  for (const v of VARIANTS) {
    const pt = await startPassthrough(ctx, image, `opt-${v.stack}`, 'auto', v.options);
    const proc: DaemonHandle = pt.proc;
    teardown.add(() => ctx.lab.stopDaemon(proc));
    const dev = attach(ctx, teardown, pt.disk, { directIo: v.directIo });
    stacks.push({ stack: v.stack, dev, proc, group: 'compared' });
  }
  return stacks;
}

export async function optionsPhase(ctx: BenchContext): Promise<void> {
  const o = filledPair(ctx.lab, ctx.images.dir, 'options', GiB, 64 * MiB, ctx.lab.path('options.db'));
  const teardown = new Teardown();
  try {
    const stacks = await variantStacks(ctx, teardown, o.main);
    const random = seededRandom(11);
    for (let run = 0; run < ctx.cfg.referenceRuns; run++) {
      for (const cell of CELLS) for (const st of shuffled(stacks, random)) ctx.measurer.measure(st, cell);
      ctx.log(`bench: run ${run + 1} of ${ctx.cfg.referenceRuns} of the option variants done`);
    }
  } finally {
    await teardown.run();
  }
  const v = ctx.measurer.values;
  ctx.lines.push(`| option variant (passthrough) | ${CELLS.map((c) => c.name).join(' | ')} |`, `|---|${CELLS.map(() => '---:').join('|')}|`);
  for (const x of VARIANTS) {
    const cells = CELLS.map((c) => (x.stack === 'ob' ? v.median('ob', c.name).toFixed(0) : (v.median(x.stack, c.name) / v.median('ob', c.name)).toFixed(3)));
    ctx.lines.push(`| ${x.label} | ${cells.join(' | ')} |`);
  }
  ctx.lines.push('', `The first row is MiB/s (1M cells) and IOPS (4K cells); the others are ratios to it. Median of ${ctx.cfg.referenceRuns} runs.`, '');
}
