/**
 * What the bench reads from and does to the host: process CPU and RSS from /proc, CPU pinning, the disk behind
 * a directory and its read counters, and dropping the page cache. Everything it changes is put back at the
 * lab's cleanup.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';
import { DAEMON_CPU } from './config.js';

/** user + system CPU seconds of a process and all its threads, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Keeps the kernel's unbound workqueues (the loop devices' workers among them) on the daemon CPU for the
 * bench, and puts the old mask back at cleanup. Measured (random 4 KiB writes at QD1, on tmpfs): each
 * stack's spread over 6 runs was 30-34% with the loop workers free to run on either CPU, 5-12% here.
 */
export function pinKernelWorkers(lab: Lab): string {
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

/** Turns the kernel's FUSE-over-io_uring opt-in (fuse.enable_uring) on for the run, put back by the lab; says how it stands. */
export function fuseUringOptIn(lab: Lab, turnOn: boolean): string {
  const file = '/sys/module/fuse/parameters/enable_uring';
  let old: string;
  try {
    old = fs.readFileSync(file, 'utf8').trim();
  } catch {
    return 'FUSE over io_uring: not in this kernel';
  }
  if (!turnOn || old === 'Y') return `FUSE over io_uring: fuse.enable_uring=${old}${turnOn ? '' : ' (left as it was)'}`;
  fs.writeFileSync(file, 'Y');
  lab.onCleanup(`restore ${file}`, () => fs.writeFileSync(file, old));
  return `FUSE over io_uring: fuse.enable_uring=Y for this run (was ${old})`;
}

/**
 * Runs `start` (which spawns a server) with this process pinned to the daemon CPU, so the server is pinned from its
 * first instruction, as systemd's CPUAffinity= would pin it: the native engine sizes its io_uring workers by the CPUs
 * it may use when it starts. This process's affinity is restored afterwards.
 */
export async function spawnPinned<T>(pin: boolean, start: () => Promise<T>): Promise<T> {
  if (!pin) return start();
  const before = /:\s*([0-9a-f,]+)\s*$/i.exec(execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }))?.[1];
  execFileSync('taskset', ['-p', '-c', DAEMON_CPU, String(process.pid)], { stdio: 'ignore' });
  try {
    return await start();
  } finally {
    if (before) execFileSync('taskset', ['-p', before, String(process.pid)], { stdio: 'ignore' });
  }
}

/** Moves every thread of a daemon to the daemon CPU (threads it starts later inherit it). */
export function pinProcess(h: DaemonHandle, pin: boolean): DaemonHandle {
  if (pin) execFileSync('taskset', ['-a', '-p', '-c', DAEMON_CPU, String(h.child.pid)], { stdio: 'ignore' });
  return h;
}

export interface DiskInfo {
  fsType: string;
  source: string;
  /** /sys/class/block/<dev>/stat of the block device behind the directory, when there is one. */
  statFile: string | undefined;
}

/** The file system and block device a directory lives on (findmnt). */
export function diskOf(dir: string): DiskInfo {
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--target', dir], { encoding: 'utf8' });
  const [fsType = 'unknown', source = 'unknown'] = (r.stdout ?? '').trim().split(/\s+/);
  const dev = source.startsWith('/dev/') ? fs.realpathSync(source).replace(/^\/dev\//, '') : undefined;
  const statFile = dev && fs.existsSync(`/sys/class/block/${dev}/stat`) ? `/sys/class/block/${dev}/stat` : undefined;
  return { fsType, source, statFile };
}

/** Bytes read from a block device since boot (sectors are 512 bytes in /sys/.../stat). */
export function diskReadBytes(statFile: string): number {
  const fields = fs.readFileSync(statFile, 'utf8').trim().split(/\s+/);
  return Number(fields[2]) * 512;
}

/** Writes back dirty pages and drops the clean page cache, dentries and inodes; throws when it cannot. */
export function dropCaches(): void {
  execFileSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Whether this process may drop the page cache: the reason when it may not. */
export function dropCachesUnavailable(): string | undefined {
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
