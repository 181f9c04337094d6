/**
 * The stacks the stacks phase measures, each a loop device (--direct-io=on, 4 KiB sectors) on:
 *   a   the raw main image of the first engine's pair c (the limit: the kernel loop device, no FUSE)
 *   b   scripts/passthrough.ts on that image, opened the way remapfs opens it (O_DIRECT writes, cached reads)
 *   b0  the same passthrough with buffered writes (writes only; its reads are b's)
 * and per engine (native, fuse-native):
 *   c   remapfs, no remaps;  d  1% of blocks remapped, scattered (c's daemon);  e  like d, on a second daemon
 *       whose scanner runs (at its default rate) only during e's runs;  cD  like c, `--open-mode direct` (--direct)
 * Stack names carry the engine: c.native, d.fuse-native.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import type { DaemonHandle } from '../../lib/lab/lab.js';
import type { EngineName } from './config.js';
import { GiB, MiB } from './config.js';
import { type BenchContext, startPassthrough, startRemapfs, type Teardown } from './context.js';
import { type EngineChoice, firstLine, servedEngineProblem } from './engines.js';
import { filledPair, injectRemaps, ONE_PERCENT_SCATTERED, type PairFiles } from './images.js';
import type { Target } from './measure.js';

export interface Stack extends Target {
  /** Compared stacks run interleaved; the reference b0 runs on its own afterwards. */
  group: 'compared' | 'reference';
  writesOnly?: boolean;
  /** Called with true before each of its runs and false after (the scanner of e). */
  around?: (on: boolean) => void;
}

export interface EngineStacks {
  engine: EngineName;
  /** The pair of c, whose main image a and b use. */
  base: PairFiles;
  /** The pair of d, whose main image ad uses (the image control of d/c). */
  remapped: PairFiles;
  stacks: Stack[];
  /** Describes the scan that ran during e's runs. */
  scanNote: () => string;
}

export const stackName = (kind: string, engine: EngineName): string => `${kind}.${engine}`;

export function attach(ctx: BenchContext, teardown: Teardown, file: string, opts: { directIo?: boolean } = {}): string {
  const dev = ctx.lab.attachLoop(file, opts);
  teardown.add(() => void execFileSync('losetup', ['-d', dev]));
  return dev;
}

export async function serve(ctx: BenchContext, teardown: Teardown, db: string, mntName: string, extra: readonly string[]): Promise<{ mnt: string; proc: DaemonHandle }> {
  const mnt = ctx.lab.mkdir(mntName);
  const proc = await startRemapfs(ctx, mnt, db, extra);
  teardown.add(async () => {
    ctx.lab.ok(['--db', db, 'unmount', mnt]);
    await proc.exited;
  });
  return { mnt, proc };
}

/** The scan's progress, and what health found if anything (its exit status is a bitmask: new remaps are 64). */
export function describeScan(ctx: BenchContext, db: string, pair: string): string {
  const r = ctx.lab.cli(['--db', db, 'health', pair, '--json']);
  if (r.status < 0 || r.status & 1) throw new Error(`remapfs health ${pair} exited ${r.status}: ${r.stderr.trim()}`);
  const h = JSON.parse(r.stdout) as { pairs: Array<{ messages: string[]; scan: { progressPercent: number | null; passesCompleted: number; inProgress: boolean } }> };
  const p = h.pairs[0];
  const sc = p?.scan;
  const progress = sc?.inProgress ? `pass in progress at ${sc.progressPercent}%` : `${sc?.passesCompleted} passes completed`;
  return r.status ? `${progress}; health ${r.status}: ${p?.messages.join('; ')}` : progress;
}

/** A pair with 1% remapped whose scanner is off until `around(true)`; `extraConfig` tunes it further. */
export function scanningPair(ctx: BenchContext, db: string, name: string, extraConfig: readonly string[] = []): { pair: PairFiles; around: (on: boolean) => void } {
  const pair = filledPair(ctx.lab, ctx.images.dir, name, GiB, 64 * MiB, db);
  injectRemaps(db, name, ONE_PERCENT_SCATTERED);
  ctx.lab.ok(['--db', db, 'config', name, 'scanIntervalHours=0.001', 'scanEnabled=false', ...extraConfig]);
  return { pair, around: (on) => void ctx.lab.ok(['--db', db, 'config', name, `scanEnabled=${on}`]) };
}

/** c, d, e (and cD) of one engine; undefined, with the reason logged, when the engine cannot serve. */
export async function engineStacks(ctx: BenchContext, teardown: Teardown, choice: EngineChoice): Promise<EngineStacks | undefined> {
  const { lab, images } = ctx;
  const e = choice.engine;
  if (!choice.available) return skipEngine(ctx, e, choice.why);
  const db = lab.path(`${e}.db`);
  const scanDb = lab.path(`${e}-scanning.db`);
  const c = filledPair(lab, images.dir, `bench-${e}`, GiB, 64 * MiB, db);
  const d = filledPair(lab, images.dir, `remapped-${e}`, GiB, 64 * MiB, db);
  injectRemaps(db, `remapped-${e}`, ONE_PERCENT_SCATTERED);
  const scan = scanningPair(ctx, scanDb, `scanning-${e}`);
  let served: Array<{ mnt: string; proc: DaemonHandle }>;
  try {
    served = [await serve(ctx, teardown, db, `mnt-${e}`, choice.mountArgs), await serve(ctx, teardown, scanDb, `mnt-${e}-scan`, choice.mountArgs)];
  } catch (err) {
    return skipEngine(ctx, e, firstLine(err));
  }
  const [main, scanning] = served as [{ mnt: string; proc: DaemonHandle }, { mnt: string; proc: DaemonHandle }];
  const problem = servedEngineProblem(lab, db, c.name, e, main.proc);
  if (problem) return skipEngine(ctx, e, problem);
  const engineLine = /^engine\s+(.*)$/m.exec(lab.ok(['--db', db, 'status', c.name]))?.[1];
  if (engineLine) ctx.notes.push(`Engine of the ${e} stacks, as status shows it: ${engineLine}.`);
  const stacks: Stack[] = [
    { stack: stackName('c', e), dev: attach(ctx, teardown, path.join(main.mnt, c.name)), proc: main.proc, group: 'compared' },
    { stack: stackName('d', e), dev: attach(ctx, teardown, path.join(main.mnt, `remapped-${e}`)), proc: main.proc, group: 'compared' },
    { stack: stackName('e', e), dev: attach(ctx, teardown, path.join(scanning.mnt, scan.pair.name)), proc: scanning.proc, group: 'compared', around: scan.around },
  ];
  if (ctx.cfg.direct) stacks.push(await directStack(ctx, teardown, choice.mountArgs, e));
  return { engine: e, base: c, remapped: d, stacks, scanNote: () => describeScan(ctx, scanDb, scan.pair.name) };
}

function skipEngine(ctx: BenchContext, engine: EngineName, why: string): undefined {
  const line = `${engine} engine not available: ${why}`;
  ctx.log(`bench: ${line}; its stacks are skipped`);
  ctx.notes.push(`${line}: its stacks are not in the tables.`);
  return undefined;
}

/** cD: remapfs with `--open-mode direct` (O_DIRECT reads too), its own daemon and pair. */
async function directStack(ctx: BenchContext, teardown: Teardown, mountArgs: readonly string[], e: EngineName): Promise<Stack> {
  const db = ctx.lab.path(`${e}-direct.db`);
  const p = filledPair(ctx.lab, ctx.images.dir, `direct-${e}`, GiB, 64 * MiB, db);
  const s = await serve(ctx, teardown, db, `mnt-${e}-direct`, [...mountArgs, '--open-mode', 'direct']);
  return { stack: stackName('cD', e), dev: attach(ctx, teardown, path.join(s.mnt, p.name)), proc: s.proc, group: 'compared' };
}

/** a, b and b0 on the main image of `base`; ad on that of `remapped` (two files differ on a disk: d/c's control). */
export async function referenceStacks(ctx: BenchContext, teardown: Teardown, base: PairFiles, remapped: PairFiles): Promise<Stack[]> {
  const pt = await startPassthrough(ctx, base.main, 'pt', 'auto');
  teardown.add(() => ctx.lab.stopDaemon(pt.proc));
  const pt0 = await startPassthrough(ctx, base.main, 'pt0', 'buffered');
  teardown.add(() => ctx.lab.stopDaemon(pt0.proc));
  return [
    { stack: 'a', dev: attach(ctx, teardown, base.main), proc: undefined, group: 'compared' },
    { stack: 'ad', dev: attach(ctx, teardown, remapped.main), proc: undefined, group: 'compared' },
    { stack: 'b', dev: attach(ctx, teardown, pt.disk), proc: pt.proc, group: 'compared' },
    { stack: 'b0', dev: attach(ctx, teardown, pt0.disk), proc: pt0.proc, group: 'reference', writesOnly: true },
  ];
}
