/**
 * npm run bench: fio (libaio, direct=1) through a loop device
 * (--direct-io=on --sector-size 4096) on a 1 GiB image, for each cell and
 * each stack, median of RUNS runs, with ratios measured in the same run:
 *
 *   a   the kernel loop device on the raw image (the limit)
 *   b   a minimal fuse-native passthrough (scripts/passthrough.ts) that opens
 *       the image the way remapfs does by default (O_DIRECT writes, cached reads)
 *   b0  the same passthrough with plain buffered writes (no per-write error report)
 *   c   remapfs, no remaps
 *   d   remapfs, 1% of blocks remapped, scattered
 *   e   remapfs with 1% remapped while a background scan is due at its default rate
 *
 * b, c, d and e, whose ratios are the targets, run interleaved in a shuffled
 * order for every run and cell; a and b0, the references, run afterwards.
 * The images live on a private tmpfs (BENCH_DIR puts them elsewhere, e.g. on
 * a disk, and then the page cache is warmed before every run), fio runs on
 * CPU 0, and every FUSE daemon and the kernel's loop workers on CPU 1
 * (BENCH_PIN=0 turns that off).
 * docs/performance.md says why: both cut the noise of this shared machine.
 *
 * Then scale: a pair with 1,000,000 remap entries: daemon start-up time, RSS,
 * and throughput against a pair with none. Everything it makes is removed at
 * the end, also after a failure. BENCH_RUNS, BENCH_RUNTIME (seconds),
 * BENCH_PHASES (stacks,scale; also options, profile), BENCH_CPU_PROF (a directory for the
 * daemons' V8 profiles), BENCH_DIR, BENCH_PIN and BENCH_CONTROLS (=1: three more
 * stacks in the interleave: b2, a second identical passthrough, whose ratio to b
 * is the noise floor; cs, remapfs with fuse-native's stock dispatch; ey, like e
 * but with a scanner that does not yield to user I/O) tune it.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type DaemonHandle, Lab, REMAPFS_BIN, requireKernelFeatures } from '../lib/lab/lab';
import { identityOf, reconcile } from '../lib/meta/reconcile';
import type { SlotEntry } from '../lib/format/slot-codec';
import { SlotSet } from '../lib/meta/slots';
import { MetaState } from '../lib/meta/state';
import { FileDevice } from '../lib/block/file-device';
import { spareLayout } from '../lib/format/layout';
import { Store } from '../lib/store/db';
import { CATEGORIES, type CpuProfile, summarise } from './profile-summary';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const RUNTIME = Number(process.env.BENCH_RUNTIME ?? 1.5);
/** Runs of the reference stacks a and b0. */
const REFERENCE_RUNS = Math.min(RUNS, 3);
/** Comma-separated phases to run: stacks (a, b, b0, c, d, e), scale (1M entries); not by default: options (mount and loop options), profile (where the daemon's time goes). */
const PHASES = new Set((process.env.BENCH_PHASES ?? 'stacks,scale').split(','));
/** A directory for V8 CPU profiles of every remapfs daemon (node --cpu-prof). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
/** fio on CPU 0, every FUSE daemon on CPU 1. */
const PIN = process.env.BENCH_PIN !== '0' && os.cpus().length >= 2;
/** A directory for the images instead of a private tmpfs. */
const BENCH_DIR = process.env.BENCH_DIR;
/** Adds the control stacks b2 and cs to the interleave. */
const CONTROLS = process.env.BENCH_CONTROLS === '1';
const FIO_CPU = '0';
const DAEMON_CPU = '1';

interface Cell {
  name: string;
  rw: string;
  bs: string;
  depth: number;
  metric: 'bw' | 'iops';
}

const CELLS: Cell[] = [
  { name: 'seq read 1M', rw: 'read', bs: '1M', depth: 4, metric: 'bw' },
  { name: 'seq write 1M', rw: 'write', bs: '1M', depth: 4, metric: 'bw' },
  { name: 'rand read 4K QD1', rw: 'randread', bs: '4k', depth: 1, metric: 'iops' },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', depth: 32, metric: 'iops' },
  { name: 'rand write 4K QD1', rw: 'randwrite', bs: '4k', depth: 1, metric: 'iops' },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', depth: 32, metric: 'iops' },
];

/**
 * Images on a disk are read back into the page cache before every fio run. The
 * stacks read through the cache, and O_DIRECT writes drop the pages they cover,
 * so without this a run's speed would depend on which runs came before it
 * (measured: two identical pairs on one daemon differed 3x in sequential
 * reads). On tmpfs the images are the page cache and this list stays empty.
 */
let warmFiles: Array<{ file: string; bytes: number }> = [];

function warmCache(): void {
  for (const w of warmFiles) execFileSync('dd', [`if=${w.file}`, 'of=/dev/null', 'bs=1M', `count=${Math.ceil(w.bytes / MiB)}`, 'status=none']);
}

function fio(dev: string, cell: Cell): { value: number; bytes: number } {
  execFileSync('sync'); // no dirty pages from the previous stack's run
  warmCache();
  const args = [
    '--name=bench', `--filename=${dev}`, `--rw=${cell.rw}`, `--bs=${cell.bs}`, `--iodepth=${cell.depth}`, '--ioengine=libaio', '--direct=1',
    '--time_based', `--runtime=${Math.round(RUNTIME * 1000)}ms`, '--ramp_time=500ms', // in ms: fio reads a bare "1.5" as 1 s
    '--size=1023M', // the last MiB holds the main's label: the raw stacks must not overwrite it
    '--randrepeat=0', '--norandommap', '--output-format=json',
  ];
  const out = PIN
    ? execFileSync('taskset', ['-c', FIO_CPU, 'fio', ...args], { encoding: 'utf8', maxBuffer: 64 * MiB })
    : execFileSync('fio', args, { encoding: 'utf8', maxBuffer: 64 * MiB });
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<{ read: FioSide; write: FioSide }> }).jobs[0];
  if (!job) throw new Error('fio printed no job');
  const side = cell.rw.includes('read') ? job.read : job.write;
  return { value: cell.metric === 'bw' ? side.bw_bytes / MiB : side.iops, bytes: side.io_bytes };
}

interface FioSide {
  bw_bytes: number;
  iops: number;
  io_bytes: number;
}

/** A small deterministic generator (mulberry32), so every bench run uses the same orders. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Adds remap entries straight into a pair's database and slots (the data path does not care what the spare blocks hold). */
function injectRemaps(dbPath: string, name: string, mainBlocks: number[]): void {
  const store = Store.open(dbPath, { create: false });
  const pair = store.pairs.get(name);
  if (!pair) throw new Error(`no pair ${name}`);
  const spare = FileDevice.open(pair.sparePath, { mode: 'buffered' });
  try {
    const layout = spareLayout(pair.spareBytes, pair.blockSize);
    const slots = new SlotSet(spare, layout);
    const current = reconcile(store, pair, slots, { write: true }).state;
    const taken = new Set(current.entries.map((e) => e.spareBlock));
    const entries: SlotEntry[] = [...current.entries];
    const pool = layout.pool.flatMap((r) => [r.startBlock, r.endBlock]);
    let range = 0;
    let next = pool[0] as number;
    const now = Date.now();
    for (const mainBlock of mainBlocks) {
      for (;;) {
        const end = pool[2 * range + 1] as number;
        if (next >= end) {
          range++;
          next = pool[2 * range] as number;
          if (next === undefined) throw new Error('spare pool too small for the injected remaps');
          continue;
        }
        if (taken.has(next)) {
          next++;
          continue;
        }
        break;
      }
      entries.push({ mainBlock, spareBlock: next++, createdAt: now, reason: 'manual', state: 'remapped', lostSectors: 0 });
    }
    const seq = current.sequence + 1;
    const state = new MetaState(identityOf(pair), layout, seq, entries);
    store.transaction(() => {
      store.remaps.putMany(
        pair.id,
        entries.slice(current.entries.length).map((e) => ({ mainBlock: e.mainBlock, spareBlock: e.spareBlock, reason: 'manual' as const, state: 'remapped' as const, lostSectors: 0, createdAt: e.createdAt })),
      );
      store.pairs.setMetaSeq(pair.id, seq);
    });
    if (slots.writeAll(state).length) throw new Error('could not write the slots');
  } finally {
    spare.close();
    store.close();
  }
}

type Table = Record<string, Record<string, number[]>>;

/** 1% of the 4 KiB blocks of the measured GiB, one in every 100, at scattered places within each 100. */
const ONE_PERCENT_SCATTERED = Array.from({ length: Math.floor(GiB / 4096 / 100) }, (_, i) => i * 100 + ((i * 37) % 100));

/**
 * Keeps the kernel's unbound workqueues (the loop devices' workers among them)
 * on the daemon CPU for the bench, and puts the old mask back at cleanup.
 * Measured (random 4 KiB writes at QD1, on tmpfs): each stack's spread over 6
 * runs was 30-34% with the loop workers free to run on either CPU, 5-12% here.
 */
function pinKernelWorkers(lab: Lab): string {
  const file = '/sys/devices/virtual/workqueue/cpumask';
  try {
    const old = fs.readFileSync(file, 'utf8').trim();
    fs.writeFileSync(file, (1 << Number(DAEMON_CPU)).toString(16));
    lab.onCleanup(`restore ${file}`, () => fs.writeFileSync(file, old));
    return `, loop workers on CPU ${DAEMON_CPU}`;
  } catch (err) {
    return ` (loop workers not pinned: ${err instanceof Error ? err.message : String(err)})`;
  }
}

/** Moves every thread of a daemon to the daemon CPU (threads it starts later inherit it). */
function pin(h: DaemonHandle): DaemonHandle {
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', DAEMON_CPU, String(h.child.pid)], { stdio: 'ignore' });
  return h;
}

function fill(file: string, bytes: number): void {
  execFileSync('fio', ['--name=fill', `--filename=${file}`, '--rw=write', '--bs=1M', `--size=${bytes}`, '--ioengine=psync', '--output-format=terse'], { stdio: 'ignore' });
}

/**
 * A main image with data in its first GiB (reads read data, held in the page cache) and a spare, paired as
 * `name`. A spare of up to 1 GiB is filled too: the spare blocks of remaps injected later must not be holes,
 * or the first write to each would allocate file-system blocks, which a real remap (it writes the block's data
 * first) never leaves to the user's writes.
 */
function filledPair(lab: Lab, dir: string, name: string, mainBytes: number, spareBytes: number, db = lab.dbPath): { main: string; spare: string } {
  const main = lab.image(`${name}-main.img`, mainBytes, dir);
  const spare = lab.image(`${name}-spare.img`, spareBytes, dir);
  fill(main, Math.min(mainBytes, GiB));
  if (spareBytes <= GiB) fill(spare, spareBytes);
  lab.ok(['--db', db, 'init', name, '--main', main, '--spare', spare]);
  return { main, spare };
}

/** The directory for the images: a private tmpfs, or a fresh directory under BENCH_DIR. */
function imageDir(lab: Lab): { dir: string; inMemory: boolean } {
  if (BENCH_DIR) {
    const dir = fs.mkdtempSync(path.join(path.resolve(BENCH_DIR), 'remapfs-bench-'));
    lab.onCleanup(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
    return { dir, inMemory: false };
  }
  const dir = lab.mkdir('images');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.floor(os.totalmem() / 2)}`, 'tmpfs', dir]);
  lab.onCleanup(`unmount the tmpfs at ${dir}`, () => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  });
  return { dir, inMemory: true };
}

let workerPinning = '';

function setting(): string {
  return `images on ${BENCH_DIR ? path.resolve(BENCH_DIR) : 'a private tmpfs'}; ${PIN ? `fio on CPU ${FIO_CPU}, daemons on CPU ${DAEMON_CPU}${workerPinning}` : 'no CPU pinning'}`;
}

async function main(): Promise<void> {
  requireKernelFeatures();
  if (spawnSync('fio', ['--version']).status !== 0) throw new Error('fio is not installed (npm run bench runs scripts/setup.sh, which installs it)');
  const started = Date.now();
  const lab = new Lab('remapfs-bench-');
  const results: Table = {};
  const cpu: Table = {};
  const record = (cfg: string, cell: string, v: number) => ((results[cfg] ??= {})[cell] ??= []).push(v);
  const m = (cfg: string, cell: string) => median(results[cfg]?.[cell] ?? [NaN]);
  const log = (s: string) => process.stderr.write(s + '\n');
  const startDaemon = async (mnt: string, db = lab.dbPath, extra: string[] = []) =>
    pin(
      CPU_PROF_DIR
        ? await lab.startProcess(['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF_DIR)}`, REMAPFS_BIN, 'mount', mnt, '--db', db, ...extra], mnt, 'remapfs: serving')
        : await lab.startDaemon(mnt, ['--db', db, ...extra]),
    );
  const images = imageDir(lab);
  if (PIN) workerPinning = pinKernelWorkers(lab);
  const warmList = (files: Array<{ file: string; bytes: number }>) => (images.inMemory ? [] : files);
  const lines: string[] = [];
  try {
    log(`bench: ${os.cpus().length} cores, ${(os.totalmem() / GiB).toFixed(0)} GiB, kernel ${os.release()}, node ${process.version}; ${RUNS} runs of ${RUNTIME} s per cell; phases ${[...PHASES].join(',')}; ${setting()}`);
    const mnt = lab.mkdir('mnt');
    const measure = (cfg: string, dev: string, proc: DaemonHandle | undefined, cell: Cell) => {
      const pid = proc?.child.pid;
      const cpu0 = pid ? cpuSeconds(pid) : 0;
      const r = fio(dev, cell);
      if (pid) ((cpu[cfg] ??= {})[cell.name] ??= []).push((cpuSeconds(pid) - cpu0) / (r.bytes / GiB));
      record(cfg, cell.name, r.value);
    };

    if (PHASES.has('stacks')) {
      // c and d: two pairs on one daemon; e: a pair like d on a second daemon, whose scanner is switched on only for e's runs.
      const c = filledPair(lab, images.dir, 'bench', GiB, 64 * MiB);
      const d = filledPair(lab, images.dir, 'remapped', GiB, 64 * MiB);
      const db2 = lab.path('scanning.db');
      const e = filledPair(lab, images.dir, 'scanning', GiB, 64 * MiB, db2);
      injectRemaps(lab.dbPath, 'remapped', ONE_PERCENT_SCATTERED);
      injectRemaps(db2, 'scanning', ONE_PERCENT_SCATTERED);
      lab.ok(['--db', db2, 'config', 'scanning', 'scanIntervalHours=0.001', 'scanEnabled=false']);

      const loopA = lab.attachLoop(c.main);
      const ptDir = lab.mkdir('pt');
      const pt = pin(await lab.startProcess([path.resolve(__dirname, 'passthrough.js'), c.main, ptDir, 'auto'], ptDir, 'passthrough ready'));
      const loopB = lab.attachLoop(path.join(ptDir, 'disk'));
      const pt0Dir = lab.mkdir('pt0');
      const pt0 = pin(await lab.startProcess([path.resolve(__dirname, 'passthrough.js'), c.main, pt0Dir, 'buffered'], pt0Dir, 'passthrough ready'));
      const loopB0 = lab.attachLoop(path.join(pt0Dir, 'disk'));
      const daemon = await startDaemon(mnt);
      const mnt2 = lab.mkdir('mnt2');
      const daemon2 = await startDaemon(mnt2, db2);
      const loopC = lab.attachLoop(path.join(mnt, 'bench'));
      const loopD = lab.attachLoop(path.join(mnt, 'remapped'));
      const loopE = lab.attachLoop(path.join(mnt2, 'scanning'));
      const scanToggles = new Map<string, (on: boolean) => void>([['e', (on) => void lab.ok(['--db', db2, 'config', 'scanning', `scanEnabled=${on}`])]]);

      const warmC = warmList([{ file: c.main, bytes: GiB }]);
      const stacks: Array<{ cfg: string; dev: string; proc: DaemonHandle | undefined; warm: typeof warmFiles; writesOnly?: boolean }> = [
        { cfg: 'a', dev: loopA, proc: undefined, warm: warmC },
        { cfg: 'b', dev: loopB, proc: pt, warm: warmC },
        { cfg: 'b0', dev: loopB0, proc: pt0, warm: warmC, writesOnly: true }, // its reads are b's
        { cfg: 'c', dev: loopC, proc: daemon, warm: warmC },
        { cfg: 'd', dev: loopD, proc: daemon, warm: warmList([{ file: d.main, bytes: GiB }, { file: d.spare, bytes: 64 * MiB }]) },
        { cfg: 'e', dev: loopE, proc: daemon2, warm: warmList([{ file: e.main, bytes: GiB }, { file: e.spare, bytes: 64 * MiB }]) },
      ];
      const controlLoops: string[] = [];
      const controlProcs: DaemonHandle[] = [];
      const greedyDb = lab.path('greedy.db');
      if (CONTROLS) {
        // b2: a second passthrough of its own copy of the image; cs: remapfs with fuse-native's stock dispatch, its own daemon and pair.
        const b2Image = lab.image('b2.img', GiB, images.dir);
        fill(b2Image, GiB);
        const b2Dir = lab.mkdir('pt2');
        const pt2 = pin(await lab.startProcess([path.resolve(__dirname, 'passthrough.js'), b2Image, b2Dir, 'auto'], b2Dir, 'passthrough ready'));
        const db5 = lab.path('stock.db');
        const cs = filledPair(lab, images.dir, 'stock', GiB, 64 * MiB, db5);
        const mnt5 = lab.mkdir('mnt5');
        const daemon5 = await startDaemon(mnt5, db5, ['--dispatch', 'stock']);
        const loopB2 = lab.attachLoop(path.join(b2Dir, 'disk'));
        const loopCs = lab.attachLoop(path.join(mnt5, 'stock'));
        // ey: like e, but its scanner does not yield to user I/O (scanIdleMs=0): what a scan at the default rate costs when it competes.
        const ey = filledPair(lab, images.dir, 'greedy', GiB, 64 * MiB, greedyDb);
        injectRemaps(greedyDb, 'greedy', ONE_PERCENT_SCATTERED);
        lab.ok(['--db', greedyDb, 'config', 'greedy', 'scanIntervalHours=0.001', 'scanEnabled=false', 'scanIdleMs=0']);
        const mnt6 = lab.mkdir('mnt6');
        const daemon6 = await startDaemon(mnt6, greedyDb);
        const loopEy = lab.attachLoop(path.join(mnt6, 'greedy'));
        scanToggles.set('ey', (on) => lab.ok(['--db', greedyDb, 'config', 'greedy', `scanEnabled=${on}`]));
        controlLoops.push(loopB2, loopCs, loopEy);
        controlProcs.push(pt2, daemon5, daemon6);
        stacks.push(
          { cfg: 'b2', dev: loopB2, proc: pt2, warm: warmList([{ file: b2Image, bytes: GiB }]) },
          { cfg: 'cs', dev: loopCs, proc: daemon5, warm: warmList([{ file: cs.main, bytes: GiB }]) },
          { cfg: 'ey', dev: loopEy, proc: daemon6, warm: warmList([{ file: ey.main, bytes: GiB }, { file: ey.spare, bytes: 64 * MiB }]) },
        );
      }
      const run1 = (st: (typeof stacks)[number], cell: Cell) => {
        warmFiles = st.warm;
        scanToggles.get(st.cfg)?.(true);
        measure(st.cfg, st.dev, st.proc, cell);
        scanToggles.get(st.cfg)?.(false);
      };
      // b to e, whose ratios are the targets: interleaved run by run and cell by cell, in a shuffled order
      // each time, so that drift of a noisy machine, and whatever one run leaves behind on the host, hits
      // every stack alike.
      const compared = stacks.filter((st) => ['b', 'c', 'd', 'e', 'b2', 'cs', 'ey'].includes(st.cfg));
      const random = seededRandom(42);
      for (let run = 0; run < RUNS; run++) {
        for (const cell of CELLS) for (const st of shuffled(compared, random)) run1(st, cell);
        log(`bench: run ${run + 1} of ${RUNS} of ${compared.map((st) => st.cfg).join(', ')} done`);
      }
      // a and b0 write far faster than the rest (the host is still busy with it during the next run), so they
      // run on their own, afterwards. They are references, not targets.
      for (let run = 0; run < REFERENCE_RUNS; run++) {
        for (const cell of CELLS) for (const st of stacks.filter((x) => x.cfg === 'a' || x.cfg === 'b0')) if (!st.writesOnly || cell.rw.includes('write')) run1(st, cell);
      }
      log('bench: a and b0 done');
      const describeScan = (db: string, pair: string) => {
        const h = JSON.parse(lab.ok(['--db', db, 'health', pair, '--json'])) as { pairs: Array<{ scan: { progressPercent: number | null; passesCompleted: number; inProgress: boolean } }> };
        const sc = h.pairs[0]?.scan;
        return sc?.inProgress ? `pass in progress at ${sc.progressPercent}%` : `${sc?.passesCompleted} passes completed`;
      };
      const scanNote = `scan during e: ${describeScan(db2, 'scanning')}${CONTROLS ? `; during ey: ${describeScan(greedyDb, 'greedy')}` : ''}`;
      log(`bench: ${scanNote}`);
      for (const loop of [loopA, loopB, loopB0, loopC, loopD, loopE, ...controlLoops]) execFileSync('losetup', ['-d', loop]);
      lab.ok(['unmount', mnt]);
      lab.ok(['--db', db2, 'unmount', mnt2]);
      await daemon.exited;
      await daemon2.exited;
      for (const p of [pt, pt0, ...controlProcs]) await lab.stopDaemon(p);

      const ratio = (x: number, y: number) => (x / y).toFixed(3);
      const spread = (cfg: string, cell: string) => {
        const xs = results[cfg]?.[cell] ?? [];
        return xs.length ? `${((100 * (Math.max(...xs) - Math.min(...xs))) / median(xs)).toFixed(0)}%` : '-';
      };
      lines.push(`| cell | unit | a loop | b passthrough | b0 buffered | c remapfs | d 1% remapped | e scanning | c/b | d/b | e/b | c/a | b spread | c spread |`);
      lines.push(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
      for (const cell of CELLS) {
        const v = ['a', 'b', 'b0', 'c', 'd', 'e'].map((cfg) => m(cfg, cell.name));
        const [a, b, , cv, dv, ev] = v as [number, number, number, number, number, number];
        lines.push(
          `| ${cell.name} | ${cell.metric === 'bw' ? 'MiB/s' : 'IOPS'} | ${v.map((x) => (Number.isNaN(x) ? '-' : x.toFixed(0))).join(' | ')} | ${ratio(cv, b)} | ${ratio(dv, b)} | ${ratio(ev, b)} | ${ratio(cv, a)} | ${spread('b', cell.name)} | ${spread('c', cell.name)} |`,
        );
      }
      lines.push('');
      lines.push(`Spread: (max - min) / median of a stack's ${RUNS} runs of a cell, the noise the medians have to beat.`);
      lines.push(`The scanner yields to user I/O (scanIdleMs 100): ${scanNote}.`);
      lines.push('');
      const cpuCfgs = ['b', 'c', 'd', 'e'];
      lines.push(`| daemon CPU seconds per GiB moved (user + system, median) | ${cpuCfgs.join(' | ')} |`);
      lines.push(`|---|${cpuCfgs.map(() => '---:').join('|')}|`);
      for (const cell of CELLS) lines.push(`| ${cell.name} | ${cpuCfgs.map((cfg) => median(cpu[cfg]?.[cell.name] ?? [NaN]).toFixed(2)).join(' | ')} |`);
      lines.push('');
      if (CONTROLS) {
        lines.push(`| control | unit | b passthrough | b2 second passthrough | c remapfs | cs remapfs, stock dispatch | ey scanner not yielding | b2/b (noise floor) | c/cs (lean dispatch gain) | cs/b | ey/b | ey/e |`);
        lines.push(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
        for (const cell of CELLS) {
          const [b, b2, cv, csv, eyv, ev] = ['b', 'b2', 'c', 'cs', 'ey', 'e'].map((cfg) => m(cfg, cell.name)) as [number, number, number, number, number, number];
          lines.push(
            `| ${cell.name} | ${cell.metric === 'bw' ? 'MiB/s' : 'IOPS'} | ${[b, b2, cv, csv, eyv].map((x) => x.toFixed(0)).join(' | ')} | ${ratio(b2, b)} | ${ratio(cv, csv)} | ${ratio(csv, b)} | ${ratio(eyv, b)} | ${ratio(eyv, ev)} |`,
          );
        }
        lines.push('');
      }
    }

    if (PHASES.has('scale')) {
      // A pair with no remaps at all, and a pair with 1,000,000 entries, both with data in the measured first GiB.
      // Their own database, so the daemon serves these two pairs only.
      const db3 = lab.path('scale.db');
      const none = filledPair(lab, images.dir, 'none', GiB, 64 * MiB, db3);
      const big = filledPair(lab, images.dir, 'big', 10 * GiB, 4.5 * GiB, db3);
      warmFiles = warmList([
        { file: none.main, bytes: GiB },
        { file: big.main, bytes: GiB },
      ]);
      const t0 = Date.now();
      // Scattered over the blocks beyond the first GiB, which fio uses: the index holds 1M entries, the measured range none.
      injectRemaps(db3, 'big', Array.from({ length: 1_000_000 }, (_, i) => GiB / 4096 + 2 * i));
      log(`bench: injected 1,000,000 entries in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const startTimes: number[] = [];
      const rss: number[] = [];
      const scaleCells = CELLS.filter((c) => c.rw === 'read' || c.depth === 32);
      for (let run = 0; run < RUNS; run++) {
        const ts = Date.now();
        const d = await startDaemon(mnt, db3);
        startTimes.push((Date.now() - ts) / 1000);
        const loop = lab.attachLoop(path.join(mnt, 'big'));
        fio(loop, scaleCells[scaleCells.length - 1] as Cell);
        rss.push(rssMiB(d.child.pid as number));
        execFileSync('losetup', ['-d', loop]);
        lab.ok(['--db', db3, 'unmount', mnt]);
        await d.exited;
      }
      // One daemon serves both pairs, measured interleaved in a shuffled order.
      const both = await startDaemon(mnt, db3);
      const loopBig = lab.attachLoop(path.join(mnt, 'big'));
      const loopNone = lab.attachLoop(path.join(mnt, 'none'));
      const scaleRandom = seededRandom(7);
      for (let run = 0; run < RUNS; run++) {
        for (const cell of scaleCells) {
          for (const [cfg, loop] of shuffled([['1M', loopBig], ['none', loopNone]] as const, scaleRandom)) record(cfg, cell.name, fio(loop, cell).value);
        }
      }
      execFileSync('losetup', ['-d', loopBig]);
      execFileSync('losetup', ['-d', loopNone]);
      lab.ok(['--db', db3, 'unmount', mnt]);
      await both.exited;
      lines.push(`| scale: 1,000,000 entries | median | target |`);
      lines.push(`|---|---:|---:|`);
      lines.push(`| daemon start-up (spawn to ready) | ${median(startTimes).toFixed(2)} s | ≤ 3 s |`);
      lines.push(`| daemon RSS after fio | ${median(rss).toFixed(0)} MB | ≤ 200 MB |`);
      for (const cell of scaleCells) {
        lines.push(`| ${cell.name}: 1M entries / none | ${(m('1M', cell.name) / m('none', cell.name)).toFixed(3)} (${m('1M', cell.name).toFixed(0)} / ${m('none', cell.name).toFixed(0)}) | ≥ 0.95 |`);
      }
      lines.push('');
    }

    if (PHASES.has('options')) {
      // The mount and loop-device options, on the passthrough (they act on the kernel's side of FUSE, the same
      // for every server): each variant against b's own setting, interleaved in a shuffled order.
      const o = filledPair(lab, images.dir, 'options', GiB, 64 * MiB, lab.path('options.db'));
      const variants: Array<{ cfg: string; label: string; options: string; directIo: boolean }> = [
        { cfg: 'ob', label: 'big_writes (b, remapfs)', options: 'big_writes', directIo: true },
        { cfg: 'o-', label: 'no options (no big_writes)', options: '-', directIo: true },
        { cfg: 'omr', label: 'big_writes,max_read=131072', options: 'big_writes,max_read=131072', directIo: true },
        { cfg: 'omb', label: 'big_writes,max_background=64,congestion_threshold=48', options: 'big_writes,max_background=64,congestion_threshold=48', directIo: true },
        { cfg: 'obuf', label: 'big_writes; loop --direct-io=off', options: 'big_writes', directIo: false },
      ];
      const devs = new Map<string, { dev: string; proc: DaemonHandle }>();
      for (const v of variants) {
        const dir = lab.mkdir(`opt-${v.cfg}`);
        const proc = pin(await lab.startProcess([path.resolve(__dirname, 'passthrough.js'), o.main, dir, 'auto', v.options], dir, 'passthrough ready'));
        devs.set(v.cfg, { dev: lab.attachLoop(path.join(dir, 'disk'), { directIo: v.directIo }), proc });
      }
      warmFiles = warmList([{ file: o.main, bytes: GiB }]);
      const random = seededRandom(11);
      for (let run = 0; run < REFERENCE_RUNS; run++) {
        for (const cell of CELLS) {
          for (const v of shuffled(variants, random)) {
            const x = devs.get(v.cfg);
            if (x) measure(v.cfg, x.dev, x.proc, cell);
          }
        }
        log(`bench: run ${run + 1} of ${REFERENCE_RUNS} of the option variants done`);
      }
      for (const x of devs.values()) {
        execFileSync('losetup', ['-d', x.dev]);
        await lab.stopDaemon(x.proc);
      }
      lines.push(`| option variant (passthrough) | ${CELLS.map((c) => c.name).join(' | ')} |`);
      lines.push(`|---|${CELLS.map(() => '---:').join('|')}|`);
      for (const v of variants) {
        lines.push(`| ${v.label} | ${CELLS.map((c) => (v.cfg === 'ob' ? m('ob', c.name).toFixed(0) : (m(v.cfg, c.name) / m('ob', c.name)).toFixed(3))).join(' | ')} |`);
      }
      lines.push('');
      lines.push(`The first row is MiB/s (1M cells) and IOPS (4K cells); the others are ratios to it. Median of ${REFERENCE_RUNS} runs.`);
      lines.push('');
    }

    if (PHASES.has('profile')) {
      // Where the daemon's main thread spends its time, per cell, from a V8 CPU profile (node --cpu-prof).
      const db4 = lab.path('profile.db');
      const p = filledPair(lab, images.dir, 'profiled', GiB, 64 * MiB, db4);
      const p1 = filledPair(lab, images.dir, 'profiled-1pct', GiB, 64 * MiB, db4);
      injectRemaps(db4, 'profiled-1pct', ONE_PERCENT_SCATTERED);
      const mnt4 = lab.mkdir('mnt4');
      lines.push(`| profiled cell | pair | FUSE requests | ${CATEGORIES.join(' | ')} | busy µs per request | data system call µs per request |`);
      lines.push(`|---|---|---:|${CATEGORIES.map(() => '---:').join('|')}|---:|---:|`);
      const jobs = [...CELLS.map((cell) => ({ cell, pair: 'profiled', main: p.main })), ...CELLS.filter((c) => c.rw === 'write').map((cell) => ({ cell, pair: 'profiled-1pct', main: p1.main }))];
      for (const { cell, pair, main } of jobs) {
        const profDir = lab.mkdir(`profile-${pair}-${cell.name.replace(/\W+/g, '-')}`);
        const d = pin(await lab.startProcess(['--cpu-prof', `--cpu-prof-dir=${profDir}`, REMAPFS_BIN, 'mount', mnt4, '--db', db4], mnt4, 'remapfs: serving'));
        const loop = lab.attachLoop(path.join(mnt4, pair));
        warmFiles = warmList([{ file: main, bytes: GiB }]);
        fio(loop, cell);
        const status = JSON.parse(lab.ok(['--db', db4, 'status', pair, '--json'])) as { counters?: { readOps: number; writeOps: number } };
        const requests = (status.counters?.readOps ?? 0) + (status.counters?.writeOps ?? 0);
        execFileSync('losetup', ['-d', loop]);
        lab.ok(['--db', db4, 'unmount', mnt4]);
        await d.exited;
        const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
        if (!file) throw new Error(`no CPU profile in ${profDir}`);
        const ms = summarise(JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile);
        const busyMs = CATEGORIES.filter((c) => !c.startsWith('idle')).reduce((sum, c) => sum + ms[c], 0);
        const perRequest = (x: number) => (requests ? ((1000 * x) / requests).toFixed(1) : '-');
        lines.push(`| ${cell.name} | ${pair === 'profiled' ? 'no remaps' : '1% remapped'} | ${requests} | ${CATEGORIES.map((c) => `${ms[c].toFixed(0)} ms`).join(' | ')} | ${perRequest(busyMs)} | ${perRequest(ms['data system calls (pread, pwrite, fdatasync)'])} |`);
      }
      lines.push('');
      lines.push('A profile covers the daemon from start to exit: start-up, the warm-up, the fio run, and the unmount.');
      lines.push('');
    }

    lines.push(`Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / GiB).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}; ${RUNS} runs of ${RUNTIME} s per cell; ${setting()}; bench took ${((Date.now() - started) / 1000).toFixed(0)} s.`);
    process.stdout.write(lines.join('\n') + '\n');
    fs.writeFileSync(path.resolve(__dirname, '../../bench-results.md'), lines.join('\n') + '\n');
  } finally {
    await lab.cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
