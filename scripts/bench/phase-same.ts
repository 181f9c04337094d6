/**
 * The same-image phase: what 1% of remapped blocks (d) and a running scan (e) cost, measured on ONE pair, so that
 * no difference between two image files on the disk enters d/c and e/c (the stacks phase's d and e are pairs on
 * files of their own; its ad/a shows how far two files can differ).
 *
 * The pair has three states, each a saved copy of its database and spare (the remap table and its slots):
 *   c.same  no remaps;  d.same  1% of blocks remapped, scattered;  e.same  like d, its scanner on during the runs.
 * In each round the states come in a shuffled order; for each, the files are put back in place (the spare is
 * rewritten in place, so its blocks on the disk stay where they are), a daemon starts on the first engine that
 * served, and every cell runs once, in a shuffled order (no cell is always the first after a start). Ratios are
 * paired by round (Samples.ratio). The main image is never touched between states: the pair's main image and
 * its place on the disk are the same for all three.
 *
 * The disk's own share of d/c: in each round, among the states, no daemon runs while fio replays on the pair's
 * files the device calls that d's 1 MiB requests make (split-pattern.ts) and the same requests unsplit, both
 * from the same iolog mechanism, as fast as fio drives the disk. disk split/plain is the disk's own cost of d's
 * call pattern: it bounds d/c only where the disk, not the path through FUSE, sets the pace.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Store } from '../../lib/store/db.js';
import { type Cell, CELLS, GiB, MiB } from './config.js';
import { type BenchContext, startRemapfs, Teardown } from './context.js';
import { filledPair, injectRemaps, ONE_PERCENT_SCATTERED, type PairFiles } from './images.js';
import { replay } from './measure.js';
import { iolog, replayDepth, sequentialCalls, tableLookup } from './split-pattern.js';
import { fixed, rel, seededRandom, shuffled } from './stats.js';
import { dropCaches } from './system.js';
import { attach, type Stack } from './stacks.js';
import { SAME_STACKS } from './targets.js';

type State = 'c' | 'd' | 'e';
const STATES: readonly State[] = ['c', 'd', 'e'];
/** The replays of d's device calls on the disk, with no daemon: whole requests and split ones. */
const DISK = { plain: 'disk.plain', split: 'disk.split' } as const;
/** Passes over the 1023 MiB region per replay: about as long as a cell's run on this disk. */
const REPLAY_PASSES = 3;

interface Replay {
  cell: Cell;
  log: string;
  depth: number;
}

interface Saved {
  db: string;
  spare: string;
}

function save(ctx: BenchContext, pair: PairFiles, name: string): Saved {
  const saved = { db: ctx.lab.path(`same-${name}.db`), spare: ctx.lab.path(`same-${name}.spare`) };
  fs.copyFileSync(pair.db, saved.db);
  fs.copyFileSync(pair.spare, saved.spare);
  return saved;
}

/** Puts a saved state back: the database as a file, the spare rewritten in place (same blocks on the disk). */
function restore(pair: PairFiles, saved: Saved): void {
  for (const side of ['-wal', '-shm']) fs.rmSync(pair.db + side, { force: true });
  fs.copyFileSync(saved.db, pair.db);
  const buf = Buffer.alloc(4 * MiB);
  const from = fs.openSync(saved.spare, 'r');
  const to = fs.openSync(pair.spare, 'r+');
  try {
    for (let pos = 0; ; pos += buf.length) {
      const n = fs.readSync(from, buf, 0, buf.length, pos);
      if (n === 0) break;
      fs.writeSync(to, buf, 0, n, pos);
    }
    fs.fsyncSync(to);
  } finally {
    fs.closeSync(from);
    fs.closeSync(to);
  }
}

async function serveState(ctx: BenchContext, pair: PairFiles, state: State, saved: Saved, mountArgs: readonly string[], random: () => number): Promise<void> {
  const { lab } = ctx;
  restore(pair, saved);
  const cli = (args: readonly string[]) => void lab.ok(['--db', pair.db, ...args]);
  if (state === 'e') cli(['config', pair.name, 'scanIntervalHours=0.001', 'scanEnabled=false']);
  const teardown = new Teardown();
  try {
    const mnt = lab.mkdir(`mnt-same-${state}`);
    const proc = await startRemapfs(ctx, mnt, pair.db, mountArgs);
    teardown.add(async () => {
      cli(['unmount', mnt]);
      await proc.exited;
    });
    const st: Stack = { stack: SAME_STACKS[state], dev: attach(ctx, teardown, path.join(mnt, pair.name)), proc, group: 'compared' };
    for (const cell of shuffled(CELLS, random)) {
      if (state === 'e') cli(['config', pair.name, 'scanEnabled=true']);
      try {
        ctx.measurer.measure(st, cell);
      } finally {
        if (state === 'e') cli(['config', pair.name, 'scanEnabled=false']);
      }
    }
  } finally {
    await teardown.run();
  }
}

/** The 1 MiB cells' iologs, plain and split by the remap table in `db`, written into the lab. */
function diskReplays(ctx: BenchContext, pair: PairFiles, db: string): Record<keyof typeof DISK, Replay>[] {
  const store = Store.open(db, { create: false });
  let table: Map<number, number>;
  let blockSize: number;
  try {
    const p = store.pairs.get(pair.name);
    if (!p) throw new Error(`no pair ${pair.name}`);
    table = new Map(store.remaps.list(p.id).map((r) => [r.mainBlock, r.spareBlock]));
    blockSize = p.blockSize;
  } finally {
    store.close();
  }
  const out: Record<keyof typeof DISK, Replay>[] = [];
  for (const cell of CELLS.filter((c) => c.bs === '1M')) {
    const requests = 1023 * REPLAY_PASSES;
    const one = (name: keyof typeof DISK): Replay => {
      const calls = sequentialCalls(1023 * MiB, MiB, REPLAY_PASSES, blockSize, tableLookup(name === 'split' ? table : new Map()));
      const log = ctx.lab.path(`same-${name}-${cell.rw}.iolog`);
      fs.writeFileSync(log, iolog(calls, { main: pair.main, spare: pair.spare }, cell.rw === 'write' ? 'write' : 'read'));
      return { cell, log, depth: replayDepth(calls.length, requests, cell.depth) };
    };
    out.push({ plain: one('plain'), split: one('split') });
  }
  return out;
}

/** One round of the disk replays: each cell's two patterns in a shuffled order, page cache dropped before each. */
function replayRound(ctx: BenchContext, replays: readonly Record<keyof typeof DISK, Replay>[], random: () => number): void {
  for (const r of shuffled(replays, random)) {
    for (const name of shuffled(['plain', 'split'] as const, random)) {
      dropCaches();
      const { cell, log, depth } = r[name];
      ctx.measurer.values.add(DISK[name], cell.name, replay(log, cell.rw === 'write', depth, ctx.cfg));
    }
  }
}

export async function samePhase(ctx: BenchContext, engine: string, mountArgs: readonly string[]): Promise<void> {
  const db = ctx.lab.path('same.db');
  const pair = filledPair(ctx.lab, ctx.images.dir, 'same', GiB, 64 * MiB, db);
  execFileSync('sync');
  const clean = save(ctx, pair, 'clean');
  injectRemaps(db, pair.name, ONE_PERCENT_SCATTERED);
  const remapped = save(ctx, pair, 'remapped');
  const replays = diskReplays(ctx, pair, db);
  const random = seededRandom(23);
  for (let run = 0; run < ctx.cfg.runs; run++) {
    for (const state of shuffled([...STATES, 'disk' as const], random)) {
      if (state === 'disk') replayRound(ctx, replays, random);
      else await serveState(ctx, pair, state, state === 'c' ? clean : remapped, mountArgs, random);
    }
    ctx.log(`bench: same-image round ${run + 1} of ${ctx.cfg.runs} done`);
  }
  ctx.lines.push(...sameTable(ctx, engine));
}

function sameTable(ctx: BenchContext, engine: string): string[] {
  const v = ctx.measurer.values;
  const { c, d, e } = SAME_STACKS;
  const lines = [
    `| same image (${engine}) | c no remaps | d 1% remapped | e scanning | d/c | e/c | d/c per round | e/c per round | disk: split/plain | per round |`,
    '|---|---:|---:|---:|---:|---:|---|---|---:|---|',
  ];
  for (const cell of CELLS) {
    const k = cell.name;
    const disk = v.has(DISK.split) && v.all(DISK.split, k).length ? [rel(v.ratio(DISK.split, DISK.plain, k)), v.ratioRange(DISK.split, DISK.plain, k)] : ['-', '-'];
    lines.push(`| ${k} | ${fixed(v.median(c, k))} | ${fixed(v.median(d, k))} | ${fixed(v.median(e, k))} | ${rel(v.ratio(d, c, k))} | ${rel(v.ratio(e, c, k))} | ${v.ratioRange(d, c, k)} | ${v.ratioRange(e, c, k)} | ${disk.join(' | ')} |`);
  }
  lines.push(
    '',
    'One pair, one main image, three states of its remap table put back before each daemon start (MiB/s or IOPS, medians; ' +
      'ratios: the median of the per-round ratios). The targets take d/c and e/c from here when this phase ran. ' +
      "disk: split/plain replays d's device calls for its 1 MiB requests on the pair's files with no daemon, against " +
      "the same requests unsplit (fio iologs, no FUSE, as fast as fio drives the disk): the disk's own cost of d's call " +
      'pattern, a bound on d/c only where the disk, not the path through FUSE, sets the pace.',
    '',
  );
  return lines;
}
