/**
 * BENCH_CONTROLS=1: three more stacks in the interleave, all on fuse-native:
 *   b2  a second identical passthrough of its own copy of the image: b2/b is the noise floor
 *   cs  remapfs with fuse-native's stock dispatch (only while `mount --dispatch` exists): c/cs is the lean
 *       dispatch's gain
 *   ey  like e, but with a scanner that does not yield to user I/O (scanIdleMs=0): what a scan at the default
 *       rate costs when it competes
 */
import * as path from 'path';
import { CELLS, GiB, MiB } from './config.js';
import { type BenchContext, startPassthrough, type Teardown } from './context.js';
import { fill, filledPair } from './images.js';
import { attach, describeScan, scanningPair, serve, type Stack, stackName } from './stacks.js';
import { fixed, rel } from './stats.js';

export async function controlStacks(ctx: BenchContext, teardown: Teardown, mountArgs: readonly string[], mountOptions: ReadonlySet<string>): Promise<{ stacks: Stack[]; scanNote: () => string }> {
  const { lab, images } = ctx;
  const b2Image = lab.image('b2.img', GiB, images.dir);
  fill(b2Image, GiB);
  const pt2 = await startPassthrough(ctx, b2Image, 'pt2', 'auto');
  teardown.add(() => lab.stopDaemon(pt2.proc));
  const stacks: Stack[] = [{ stack: 'b2', dev: attach(ctx, teardown, pt2.disk), proc: pt2.proc, group: 'compared' }];
  if (mountOptions.has('--dispatch')) {
    const db = lab.path('stock.db');
    const cs = filledPair(lab, images.dir, 'stock', GiB, 64 * MiB, db);
    const s = await serve(ctx, teardown, db, 'mnt-stock', [...mountArgs, '--dispatch', 'stock']);
    stacks.push({ stack: 'cs', dev: attach(ctx, teardown, path.join(s.mnt, cs.name)), proc: s.proc, group: 'compared' });
  } else {
    ctx.notes.push('cs (stock dispatch) skipped: `remapfs mount` has no --dispatch option.');
  }
  const greedyDb = lab.path('greedy.db');
  const ey = scanningPair(ctx, greedyDb, 'greedy', ['scanIdleMs=0']);
  const g = await serve(ctx, teardown, greedyDb, 'mnt-greedy', mountArgs);
  stacks.push({ stack: 'ey', dev: attach(ctx, teardown, path.join(g.mnt, ey.pair.name)), proc: g.proc, group: 'compared', around: ey.around });
  return { stacks, scanNote: () => describeScan(ctx, greedyDb, 'greedy') };
}

export function controlsTable(ctx: BenchContext): string[] {
  const v = ctx.measurer.values;
  const [c, e] = [stackName('c', 'fuse-native'), stackName('e', 'fuse-native')];
  const lines = [
    `| control (fuse-native) | unit | b passthrough | b2 second passthrough | c remapfs | cs remapfs, stock dispatch | ey scanner not yielding | b2/b (noise floor) | c/cs (lean dispatch gain) | cs/b | ey/b | ey/e |`,
    `|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const cell of CELLS) {
    const values = ['b', 'b2', c, 'cs', 'ey'].map((s) => fixed(v.median(s, cell.name))).join(' | ');
    const r = (x: string, y: string) => rel(v.ratio(x, y, cell.name));
    lines.push(`| ${cell.name} | ${cell.metric === 'bw' ? 'MiB/s' : 'IOPS'} | ${values} | ${r('b2', 'b')} | ${r(c, 'cs')} | ${r('cs', 'b')} | ${r('ey', 'b')} | ${r('ey', e)} |`);
  }
  lines.push('');
  return lines;
}
