/**
 * What every phase of the bench shares: the lab (it owns every mount, loop device and file, and undoes them at
 * cleanup), the configuration, the images' place, the measurements, and the report's lines.
 */
import * as path from 'path';
import { type DaemonHandle, type Lab, REMAPFS_BIN } from '../../lib/lab/lab.js';
import type { BenchConfig } from './config.js';
import type { Images } from './images.js';
import type { Measurer } from './measure.js';
import { pinProcess, spawnPinned } from './system.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface BenchContext {
  lab: Lab;
  cfg: BenchConfig;
  images: Images;
  measurer: Measurer;
  /** The report, printed at the end and written to bench-results.md. */
  lines: string[];
  /** Notes for the report's last paragraph (skipped stacks, what the cache did). */
  notes: string[];
  log(line: string): void;
}

/** Starts `remapfs mount <mnt> --db <db> <extra>` (under --cpu-prof with BENCH_CPU_PROF), pinned to the daemon CPU. */
export async function startRemapfs(ctx: BenchContext, mnt: string, db: string, extra: readonly string[] = []): Promise<DaemonHandle> {
  const { lab, cfg } = ctx;
  const h = await spawnPinned(cfg.pin, () =>
    cfg.cpuProfDir
      ? lab.startProcess(['--cpu-prof', `--cpu-prof-dir=${path.resolve(cfg.cpuProfDir)}`, REMAPFS_BIN, 'mount', mnt, '--db', db, ...extra], mnt, 'remapfs: serving')
      : lab.startDaemon(mnt, ['--db', db, ...extra]),
  );
  return pinProcess(h, cfg.pin);
}

/** Starts scripts/passthrough.js on `image` at a fresh mountpoint, pinned; its device is <dir>/disk. */
export async function startPassthrough(ctx: BenchContext, image: string, dirName: string, mode: 'auto' | 'buffered', options?: string): Promise<{ proc: DaemonHandle; disk: string }> {
  const dir = ctx.lab.mkdir(dirName);
  const argv = [path.resolve(HERE_DIR, '../passthrough.js'), image, dir, mode, ...(options ? [options] : [])];
  const proc = pinProcess(await spawnPinned(ctx.cfg.pin, () => ctx.lab.startProcess(argv, dir, 'passthrough ready')), ctx.cfg.pin);
  return { proc, disk: path.join(dir, 'disk') };
}

/** Things to undo at the end of a phase, newest first (the lab undoes whatever is left at its cleanup). */
export class Teardown {
  private readonly steps: Array<() => void | Promise<void>> = [];

  add(step: () => void | Promise<void>): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    while (this.steps.length) await this.steps.pop()?.();
  }
}
