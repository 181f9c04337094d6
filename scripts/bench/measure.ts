/**
 * One fio run (libaio, direct=1) on a device, with the page cache prepared the same way before every run,
 * and what it cost: the daemon's CPU per GiB moved, and for reads from a disk, how much of what fio read
 * came from the disk (the rest the page cache served, or read-ahead added).
 */
import { execFileSync } from 'child_process';
import type { DaemonHandle } from '../../lib/lab/lab.js';
import { type BenchConfig, type Cell, DAEMON_CPU, FIO_CPU, GiB, MiB, RAMP_SECONDS } from './config.js';
import { Samples } from './stats.js';
import { cpuSeconds, diskReadBytes, dropCaches } from './system.js';

interface FioSide {
  bw_bytes: number;
  iops: number;
  io_bytes: number;
}

export interface FioResult {
  /** MiB/s or IOPS, by the cell's metric. */
  value: number;
  bytes: number;
}

/** Runs fio with `args` (pinned to `cpu` when the bench pins) and returns its one job. */
function runFio(args: readonly string[], cfg: BenchConfig, cpu: string): { read: FioSide; write: FioSide } {
  const all = [...args, '--ioengine=libaio', '--direct=1', '--output-format=json'];
  const out = cfg.pin
    ? execFileSync('taskset', ['-c', cpu, 'fio', ...all], { encoding: 'utf8', maxBuffer: 64 * MiB })
    : execFileSync('fio', all, { encoding: 'utf8', maxBuffer: 64 * MiB });
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<{ read: FioSide; write: FioSide }> }).jobs[0];
  if (!job) throw new Error('fio printed no job');
  return job;
}

export function fio(dev: string, cell: Cell, cfg: BenchConfig): FioResult {
  const args = [
    '--name=bench', `--filename=${dev}`, `--rw=${cell.rw}`, `--bs=${cell.bs}`, `--iodepth=${cell.depth}`,
    '--time_based', `--runtime=${Math.round(cfg.runtimeSeconds * 1000)}ms`, `--ramp_time=${RAMP_SECONDS * 1000}ms`, // in ms: fio reads a bare "1.5" as 1 s
    '--size=1023M', // the last MiB holds the main's label: the raw stacks must not overwrite it
    '--randrepeat=0', '--norandommap',
  ];
  const job = runFio(args, cfg, FIO_CPU);
  const side = cell.rw.includes('read') ? job.read : job.write;
  return { value: cell.metric === 'bw' ? side.bw_bytes / MiB : side.iops, bytes: side.io_bytes };
}

/**
 * Replays a fio iolog (version 2) as fast as the device goes, at `depth`, on the daemons' CPU: the device calls
 * a daemon would make, made without it. MiB/s.
 */
export function replay(iologPath: string, write: boolean, depth: number, cfg: BenchConfig): number {
  const job = runFio(['--name=replay', `--read_iolog=${iologPath}`, '--replay_no_stall=1', `--iodepth=${depth}`], cfg, DAEMON_CPU);
  return (write ? job.write : job.read).bw_bytes / MiB;
}

/** How the page cache is prepared before each run. */
export type CachePolicy = { kind: 'drop'; statFile: string | undefined } | { kind: 'in-memory' };

/** A measured device: a stack's name, its device, and the daemon whose CPU it costs. */
export interface Target {
  stack: string;
  dev: string;
  proc: DaemonHandle | undefined;
}

export class Measurer {
  /** MiB/s or IOPS per run. */
  readonly values = new Samples();
  /** Daemon CPU seconds (user + system) per GiB moved, per run. */
  readonly cpuPerGiB = new Samples();
  /** Bytes read from the disk per byte fio read, per run (read cells, disk images only). */
  readonly diskPerRead = new Samples();

  constructor(
    private readonly cfg: BenchConfig,
    readonly cache: CachePolicy,
  ) {}

  measure(t: Target, cell: Cell): FioResult {
    execFileSync('sync'); // no dirty pages from the previous stack's run
    if (this.cache.kind === 'drop') dropCaches();
    const statFile = this.cache.kind === 'drop' ? this.cache.statFile : undefined;
    const disk0 = statFile ? diskReadBytes(statFile) : 0;
    const pid = t.proc?.child.pid;
    const cpu0 = pid ? cpuSeconds(pid) : 0;
    const r = fio(t.dev, cell, this.cfg);
    // The daemon's CPU time and the disk counters cover fio's ramp too; its io_bytes do not: scale by the time fio ran.
    const movedBytes = (r.bytes * (this.cfg.runtimeSeconds + RAMP_SECONDS)) / this.cfg.runtimeSeconds;
    if (pid) this.cpuPerGiB.add(t.stack, cell.name, (cpuSeconds(pid) - cpu0) / (movedBytes / GiB));
    if (statFile && cell.rw.includes('read') && r.bytes > 0) {
      this.diskPerRead.add(t.stack, cell.name, (diskReadBytes(statFile) - disk0) / movedBytes);
    }
    this.values.add(t.stack, cell.name, r.value);
    return r;
  }
}
