/**
 * What one `npm run bench` measures, from the command line and the environment. Pure: reads argv and env only.
 *
 *   --tmpfs | BENCH_DIR=tmpfs   images on a private tmpfs (memory) instead of the disk
 *   --dir <path> | BENCH_DIR    images under <path> (default /var/tmp, a disk directory)
 *   --direct | BENCH_DIRECT=1   adds, per engine, remapfs with `--open-mode direct` (reads bypass the page cache)
 *   BENCH_RUNS, BENCH_RUNTIME (seconds), BENCH_PHASES (stacks,same,scale; also options, profile), BENCH_CPU_PROF,
 *   BENCH_PIN (=0: no CPU pinning), BENCH_CONTROLS (=1: the control stacks b2, cs, ey),
 *   BENCH_ENGINES (default native,fuse-native: the engines whose stacks run),
 *   BENCH_CELLS (comma-separated cell names, e.g. "seq read 1M": measure only those; for quick looks, not reports),
 *   BENCH_FUSE_URING (=0: leave fuse.enable_uring as it is; by default the run turns it on, and back after, so the
 *   native engine serves through FUSE over io_uring, as docs/architecture.md tells users to set up).
 */
import * as os from 'os';
import * as path from 'path';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
export const FIO_CPU = '0';
export const DAEMON_CPU = '1';
/** fio's warm-up before it counts, in seconds. */
export const RAMP_SECONDS = 0.5;

export type EngineName = 'native' | 'fuse-native';

export interface Cell {
  name: string;
  rw: string;
  bs: string;
  depth: number;
  metric: 'bw' | 'iops';
}

const ALL_CELLS: readonly Cell[] = [
  { name: 'seq read 1M', rw: 'read', bs: '1M', depth: 4, metric: 'bw' },
  { name: 'seq write 1M', rw: 'write', bs: '1M', depth: 4, metric: 'bw' },
  { name: 'rand read 4K QD1', rw: 'randread', bs: '4k', depth: 1, metric: 'iops' },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', depth: 32, metric: 'iops' },
  { name: 'rand write 4K QD1', rw: 'randwrite', bs: '4k', depth: 1, metric: 'iops' },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', depth: 32, metric: 'iops' },
];

export const ALL_CELL_COUNT = ALL_CELLS.length;

export function chosenCells(env: NodeJS.ProcessEnv): readonly Cell[] {
  if (!env.BENCH_CELLS) return ALL_CELLS;
  const names = env.BENCH_CELLS.split(',').map((n) => n.trim());
  for (const n of names) if (!ALL_CELLS.some((c) => c.name === n)) throw new Error(`BENCH_CELLS: unknown cell ${n} (${ALL_CELLS.map((c) => c.name).join(', ')})`);
  return ALL_CELLS.filter((c) => names.includes(c.name));
}

/** The cells measured: all of them unless BENCH_CELLS names some. */
export const CELLS: readonly Cell[] = chosenCells(process.env);

export type ImagePlace = { kind: 'tmpfs' } | { kind: 'dir'; path: string };

export interface BenchConfig {
  runs: number;
  runtimeSeconds: number;
  /** Runs of the reference stacks a and b0. */
  referenceRuns: number;
  phases: Set<string>;
  cpuProfDir: string | undefined;
  /** fio on CPU 0, every FUSE daemon on CPU 1. */
  pin: boolean;
  controls: boolean;
  direct: boolean;
  engines: EngineName[];
  images: ImagePlace;
  /** Turn the kernel's FUSE-over-io_uring opt-in on for the run. */
  fuseUring: boolean;
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

function imagePlace(argv: readonly string[], env: NodeJS.ProcessEnv): ImagePlace {
  const dir = flagValue(argv, '--dir') ?? env.BENCH_DIR ?? '/var/tmp';
  if (argv.includes('--tmpfs') || dir === 'tmpfs') return { kind: 'tmpfs' };
  return { kind: 'dir', path: path.resolve(dir) };
}

function engines(env: NodeJS.ProcessEnv): EngineName[] {
  const names = (env.BENCH_ENGINES ?? 'native,fuse-native').split(',').filter(Boolean);
  for (const n of names) if (n !== 'native' && n !== 'fuse-native') throw new Error(`BENCH_ENGINES: unknown engine ${n} (native, fuse-native)`);
  return names as EngineName[];
}

export function readConfig(argv: readonly string[], env: NodeJS.ProcessEnv): BenchConfig {
  const runs = Number(env.BENCH_RUNS ?? 5);
  const runtimeSeconds = Number(env.BENCH_RUNTIME ?? 1.5);
  if (!(runs >= 1) || !(runtimeSeconds > 0)) throw new Error('BENCH_RUNS must be at least 1 and BENCH_RUNTIME above 0');
  return {
    runs,
    runtimeSeconds,
    referenceRuns: Math.min(runs, 3),
    phases: new Set((env.BENCH_PHASES ?? 'stacks,same,scale').split(',')),
    cpuProfDir: env.BENCH_CPU_PROF,
    pin: env.BENCH_PIN !== '0' && os.cpus().length >= 2,
    controls: env.BENCH_CONTROLS === '1',
    direct: argv.includes('--direct') || env.BENCH_DIRECT === '1',
    engines: engines(env),
    images: imagePlace(argv, env),
    fuseUring: env.BENCH_FUSE_URING !== '0',
  };
}
