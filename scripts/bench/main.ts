/**
 * The bench's run: checks the host, chooses where the images go and how the page cache is handled, runs the
 * phases, and prints the report. Everything it makes (mounts, loop devices, images, the tmpfs, the workqueue
 * mask) is undone by the lab at the end, also after a failure.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Lab, requireKernelFeatures } from '../../lib/lab/lab.js';
import { ALL_CELL_COUNT, type BenchConfig, CELLS, DAEMON_CPU, FIO_CPU, GiB, readConfig } from './config.js';
import type { BenchContext } from './context.js';
import { chooseEngine, mountOptions } from './engines.js';
import { imageDir, type Images } from './images.js';
import { type CachePolicy, Measurer } from './measure.js';
import { optionsPhase } from './phase-options.js';
import { profilePhase } from './phase-profile.js';
import { samePhase } from './phase-same.js';
import { scalePhase } from './phase-scale.js';
import { stacksPhase } from './phase-stacks.js';
import { dropCachesUnavailable, fuseUringOptIn, pinKernelWorkers } from './system.js';
import { type ScaleResult, targetChecks, targetsTable } from './targets.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

/** Drop the page cache before every run when the images are on a disk; say why not when it cannot be done. */
function cachePolicy(images: Images): { policy: CachePolicy; note: string } {
  if (images.inMemory) return { policy: { kind: 'in-memory' }, note: 'images in memory: the page cache is where they live, nothing to drop' };
  const why = dropCachesUnavailable();
  if (why) throw new Error(`cannot drop the page cache (${why}); the reads on a disk would be measured from whatever a previous run left cached`);
  const counters = images.disk.statFile ? `, disk reads counted from ${images.disk.statFile}` : ', no disk read counters for this file system';
  return { policy: { kind: 'drop', statFile: images.disk.statFile }, note: `page cache dropped before every run${counters}` };
}

function setting(cfg: BenchConfig, images: Images, cacheNote: string, workerPinning: string, fuseUring: string): string {
  const pinning = cfg.pin ? `fio on CPU ${FIO_CPU}, daemons on CPU ${DAEMON_CPU}${workerPinning}` : 'no CPU pinning';
  return `images on ${images.description}; ${cacheNote}; ${pinning}; ${fuseUring}`;
}

function machine(cfg: BenchContext['cfg']): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / GiB).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}; ${cfg.runs} runs of ${cfg.runtimeSeconds} s per cell`;
}

/** The phases the configuration asks for; the scale phase's numbers when it ran on the native engine (its targets' engine). */
async function phases(ctx: BenchContext): Promise<{ scale: ScaleResult | undefined }> {
  const options = mountOptions(ctx.lab);
  let served = ctx.cfg.engines.filter((e) => chooseEngine(e, options).available);
  if (ctx.cfg.phases.has('stacks')) served = await stacksPhase(ctx);
  // The scale and profile phases use one engine: the first that served (native when it did).
  const engine = served[0] ?? 'fuse-native';
  const choice = chooseEngine(engine, options);
  const mountArgs = choice.available ? choice.mountArgs : [];
  if (ctx.cfg.phases.has('same') && engine === 'native') await samePhase(ctx, engine, mountArgs);
  else if (ctx.cfg.phases.has('same')) ctx.notes.push('The same-image phase was skipped: the native engine did not serve.');
  let scale: ScaleResult | undefined;
  if (ctx.cfg.phases.has('scale')) {
    const r = await scalePhase(ctx, engine, mountArgs);
    // On fuse-native (the native engine did not serve) the native engine's scale targets are not measured.
    scale = r && engine !== 'native' ? { startSeconds: NaN, rssMiB: NaN, ratios: r.ratios.map((x) => ({ cell: x.cell, ratio: NaN })) } : r;
  }
  if (ctx.cfg.phases.has('options')) await optionsPhase(ctx);
  if (ctx.cfg.phases.has('profile')) await profilePhase(ctx, mountArgs);
  return { scale };
}

/** The verdict, first in the report. */
function verdict(ctx: BenchContext, scale: ScaleResult | undefined): string[] {
  const { cfg, measurer: m } = ctx;
  const stacks = cfg.phases.has('stacks');
  const checks = targetChecks({ values: m.values, cpuPerGiB: m.cpuPerGiB, inMemory: ctx.images.inMemory, stacks, scale, cells: CELLS });
  const partial = CELLS.length < ALL_CELL_COUNT || !stacks || !cfg.phases.has('same') || !cfg.phases.has('scale') || !cfg.engines.includes('fuse-native');
  return targetsTable(checks, partial);
}

export async function main(argv: readonly string[]): Promise<void> {
  const cfg = readConfig(argv, process.env);
  requireKernelFeatures();
  if (spawnSync('fio', ['--version']).status !== 0) throw new Error('fio is not installed (npm run bench runs scripts/setup.sh, which installs it)');
  const started = Date.now();
  const lab = new Lab('remapfs-bench-');
  const log = (s: string) => void process.stderr.write(s + '\n');
  try {
    const images = imageDir(lab, cfg.images);
    const cache = cachePolicy(images);
    const workerPinning = cfg.pin ? pinKernelWorkers(lab) : '';
    const where = setting(cfg, images, cache.note, workerPinning, fuseUringOptIn(lab, cfg.fuseUring));
    if (images.inMemory && cfg.images.kind === 'dir') log(`bench: warning: ${cfg.images.path} is ${images.disk.fsType}, memory, not a disk`);
    log(`bench: ${machine(cfg)}; phases ${[...cfg.phases].join(',')}; engines ${cfg.engines.join(',')}; ${where}`);
    const ctx: BenchContext = { lab, cfg, images, measurer: new Measurer(cfg, cache.policy), lines: [], notes: [], log };
    const { scale } = await phases(ctx);
    ctx.lines.unshift(...verdict(ctx, scale));
    ctx.lines.push(...ctx.notes, ...(ctx.notes.length ? [''] : []));
    ctx.lines.push(`Machine: ${machine(cfg)}; ${where}; bench took ${((Date.now() - started) / 1000).toFixed(0)} s.`);
    process.stdout.write(ctx.lines.join('\n') + '\n');
    fs.writeFileSync(path.resolve(HERE_DIR, '../../../bench-results.md'), ctx.lines.join('\n') + '\n');
    const m = ctx.measurer;
    const samples = { values: m.values, cpuPerGiB: m.cpuPerGiB, diskPerRead: m.diskPerRead };
    fs.writeFileSync(path.resolve(HERE_DIR, '../../../bench-samples.json'), JSON.stringify(samples, null, 1) + '\n');
  } finally {
    await lab.cleanup();
  }
}
