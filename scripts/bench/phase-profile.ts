/**
 * The profile phase (BENCH_PHASES=profile): where the daemon's main thread spends its time, per cell, from a
 * V8 CPU profile (node --cpu-prof). A profile covers the daemon from start to exit.
 */
import * as fs from 'fs';
import * as path from 'path';
import { REMAPFS_BIN } from '../../lib/lab/lab.js';
import { type Cell, CELLS, GiB, MiB } from './config.js';
import { type BenchContext, Teardown } from './context.js';
import { fio } from './measure.js';
import { filledPair, injectRemaps, ONE_PERCENT_SCATTERED } from './images.js';
import { CATEGORIES, type Category, type CpuProfile, summarise } from '../profile-summary.js';
import { attach } from './stacks.js';
import { dropCaches, pinProcess, spawnPinned } from './system.js';

/** Serves `pair` under --cpu-prof for one fio run of `cell`; the profile and the FUSE request count. */
async function profiledRun(ctx: BenchContext, db: string, mnt: string, pair: string, cell: Cell, mountArgs: readonly string[]): Promise<{ ms: Record<Category, number>; requests: number }> {
  const profDir = ctx.lab.mkdir(`profile-${pair}-${cell.name.replace(/\W+/g, '-')}`);
  const teardown = new Teardown();
  let requests = 0;
  try {
    const d = pinProcess(await spawnPinned(ctx.cfg.pin, () => ctx.lab.startProcess(['--cpu-prof', `--cpu-prof-dir=${profDir}`, REMAPFS_BIN, 'mount', mnt, '--db', db, ...mountArgs], mnt, 'remapfs: serving')), ctx.cfg.pin);
    teardown.add(async () => {
      ctx.lab.ok(['--db', db, 'unmount', mnt]);
      await d.exited;
    });
    const loop = attach(ctx, teardown, path.join(mnt, pair));
    if (!ctx.images.inMemory) dropCaches();
    fio(loop, cell, ctx.cfg);
    const status = JSON.parse(ctx.lab.ok(['--db', db, 'status', pair, '--json'])) as { counters?: { readOps: number; writeOps: number } };
    requests = (status.counters?.readOps ?? 0) + (status.counters?.writeOps ?? 0);
  } finally {
    await teardown.run();
  }
  const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no CPU profile in ${profDir}`);
  return { ms: summarise(JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile), requests };
}

export async function profilePhase(ctx: BenchContext, mountArgs: readonly string[]): Promise<void> {
  const db = ctx.lab.path('profile.db');
  filledPair(ctx.lab, ctx.images.dir, 'profiled', GiB, 64 * MiB, db);
  filledPair(ctx.lab, ctx.images.dir, 'profiled-1pct', GiB, 64 * MiB, db);
  injectRemaps(db, 'profiled-1pct', ONE_PERCENT_SCATTERED);
  const mnt = ctx.lab.mkdir('mnt-profile');
  ctx.lines.push(`| profiled cell | pair | FUSE requests | ${CATEGORIES.join(' | ')} | busy µs per request | data system call µs per request |`);
  ctx.lines.push(`|---|---|---:|${CATEGORIES.map(() => '---:').join('|')}|---:|---:|`);
  const jobs = [...CELLS.map((cell) => ({ cell, pair: 'profiled' })), ...CELLS.filter((c) => c.rw === 'write').map((cell) => ({ cell, pair: 'profiled-1pct' }))];
  for (const { cell, pair } of jobs) {
    const { ms, requests } = await profiledRun(ctx, db, mnt, pair, cell, mountArgs);
    const busyMs = CATEGORIES.filter((c) => !c.startsWith('idle')).reduce((sum, c) => sum + ms[c], 0);
    const perRequest = (x: number | undefined) => (requests && x !== undefined ? ((1000 * x) / requests).toFixed(1) : '-');
    const cols = CATEGORIES.map((c) => `${ms[c].toFixed(0)} ms`).join(' | ');
    ctx.lines.push(`| ${cell.name} | ${pair === 'profiled' ? 'no remaps' : '1% remapped'} | ${requests} | ${cols} | ${perRequest(busyMs)} | ${perRequest(ms['data system calls (pread, pwrite, fdatasync)'])} |`);
  }
  ctx.lines.push('', 'A profile covers the daemon from start to exit: start-up, the fio run, and the unmount.', '');
}
