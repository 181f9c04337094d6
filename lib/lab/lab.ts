/**
 * Lab: a scratch directory with images, a database, remapfs daemons, loop
 * devices and ext4 mounts, all torn down by cleanup() in reverse order, even
 * after a failure. Used by the demo, the end-to-end tests and the benchmark.
 * Every Lab has its own temp directory, so parallel users never collide.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loopAttachArgs, loopBackingFile } from '../block/loop.js';
import { socketPathFor } from '../daemon/control.js';
import { isMountpoint, mounts } from '../daemon/mounts.js';
import { fusermountProgram, lazyUnmountSync } from '../fs/fuse-unmount.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

export const REMAPFS_BIN = path.resolve(HERE_DIR, '../../../bin/remapfs');
/** Sets PR_SET_IO_FLUSHER, then executes its arguments (native/io-flusher-exec.c). */
export const IO_FLUSHER_LAUNCHER = path.resolve(HERE_DIR, '../../../build/Release/remapfs-io-flusher');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface DaemonHandle {
  child: ChildProcess;
  mountpoint: string;
  /** Everything the daemon printed so far (stdout and stderr). */
  output(): string;
  exited: Promise<number | null>;
  /** Where it writes a diagnostic report on SIGUSR2 (remapfs servers only). */
  reportDir?: string;
}

/** Throws with the reason when FUSE or loop devices cannot be used here. */
export function requireKernelFeatures(): void {
  const missing: string[] = [];
  if (!fs.existsSync('/dev/fuse')) missing.push('/dev/fuse is missing (modprobe fuse)');
  // Unmounting needs fusermount3 or fusermount, or root (umount -l): lib/fs/fuse-unmount.ts.
  if (!fusermountProgram() && process.getuid?.() !== 0) missing.push('neither fusermount3 nor fusermount is installed (apt-get install fuse3)');
  if (!fs.existsSync('/dev/loop-control')) missing.push('/dev/loop-control is missing (modprobe loop)');
  if (process.getuid?.() !== 0) missing.push('not running as root (losetup and mount need it)');
  if (missing.length) throw new Error(`cannot run FUSE/loop tests: ${missing.join('; ')}`);
}

export class Lab {
  readonly dir: string;
  readonly dbPath: string;
  private readonly cleanups: Array<{ what: string; fn: () => void | Promise<void> }> = [];
  /** When set, servers start as `<launcher> node …` (e.g. IO_FLUSHER_LAUNCHER); it must exec node in its place. */
  launcher: string | undefined;

  constructor(prefix = 'remapfs-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dbPath = path.join(this.dir, 'remapfs.db');
    this.onCleanup(`remove ${this.dir}`, () => fs.rmSync(this.dir, { recursive: true, force: true }));
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, REMAPFS_DB: this.dbPath };
  }

  /** Runs the remapfs CLI synchronously. */
  cli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): CliResult {
    const r = spawnSync(process.execPath, [REMAPFS_BIN, ...args], { env: opts.env ?? this.env(), encoding: 'utf8', timeout: 120000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Runs the CLI and throws unless it exits 0. */
  ok(args: string[]): string {
    const r = this.cli(args);
    if (r.status !== 0) throw new Error(`remapfs ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** A sparse image file of `bytes`, in the lab's directory or in `dir`. */
  image(name: string, bytes: number, dir = this.dir): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, '');
    fs.truncateSync(p, bytes);
    return p;
  }

  mkdir(name: string): string {
    const p = this.path(name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  }

  /** Starts `remapfs mount` and waits for its ready line. */
  startDaemon(mountpoint: string, extraArgs: string[] = [], env?: NodeJS.ProcessEnv): Promise<DaemonHandle> {
    return this.startServer(['mount', mountpoint, ...extraArgs], mountpoint, 'remapfs: serving', env);
  }

  /** Starts any foreground server (`argv` after node) that prints `ready` when its mount is up. */
  startProcess(argv: string[], mountpoint: string, ready: string): Promise<DaemonHandle> {
    return this.startServer(argv, mountpoint, ready, undefined, true);
  }

  /** Starts `remapfs simulate` (the image behind a fault-injecting FUSE file, `<mountpoint>/disk`). */
  startSimulator(image: string, mountpoint: string, extraArgs: string[] = []): Promise<DaemonHandle> {
    return this.startServer(['simulate', image, mountpoint, ...extraArgs], mountpoint, 'remapfs: simulating');
  }

  private async startServer(args: string[], mountpoint: string, ready: string, env?: NodeJS.ProcessEnv, raw = false): Promise<DaemonHandle> {
    // SIGUSR2 makes a remapfs server write a diagnostic report: stopDaemon() shows it when the server hangs.
    const reportDir = raw ? undefined : this.mkdir('reports');
    const argv = reportDir ? ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`, REMAPFS_BIN, ...args] : args;
    const [cmd, cmdArgs] = this.launcher ? [this.launcher, [process.execPath, ...argv]] : [process.execPath, argv];
    const child = spawn(cmd, cmdArgs, { env: env ?? this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const handle: DaemonHandle = { child, mountpoint, output: () => out, exited, ...(reportDir ? { reportDir } : {}) };
    this.onCleanup(`stop daemon at ${mountpoint}`, () => this.stopDaemon(handle));
    const deadline = Date.now() + 30000;
    while (!out.includes(ready)) {
      if (child.exitCode !== null) throw new Error(`remapfs ${args[0]} exited ${child.exitCode}: ${out.trim()}`);
      if (Date.now() > deadline) throw new Error(`remapfs ${args[0]} did not become ready: ${out.trim()}`);
      await sleep(50);
    }
    // Under CI the native engine must load: falling back to fuse-native fails the test instead of passing quietly.
    const fallback = /^remapfs: the native engine cannot .*$/m.exec(out);
    if (fallback && process.env.CI === 'true') throw new Error(`CI=true: ${fallback[0]}`);
    return handle;
  }

  /** SIGTERM, then SIGKILL and a lazy unmount if it does not go. */
  async stopDaemon(h: DaemonHandle): Promise<void> {
    if (h.child.exitCode === null && h.child.signalCode === null) {
      h.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const gone = await Promise.race([h.exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, 10000, false)))]);
      clearTimeout(timer);
      if (!gone) {
        const report = await diagnosticReport(h);
        process.stderr.write(`lab: daemon at ${h.mountpoint} ignored SIGTERM; killing it. Its output:\n${h.output()}\nIts threads:\n${threadStacks(h.child.pid)}\n${report}\n`);
        h.child.kill('SIGKILL');
        await h.exited;
      }
    }
    if (isMountpoint(h.mountpoint)) lazyUnmountSync(h.mountpoint);
    fs.rmSync(socketPathFor(h.mountpoint), { force: true }); // left behind when the daemon was killed
  }

  /**
   * Aborts the FUSE connection of `mountpoint`: every request pending on it fails, the only way out
   * of a deadlocked server. Through /sys/fs/fuse/connections/<N>/abort when fusectl is mounted,
   * otherwise through `umount -f` (the kernel aborts the connection before it finds the mount busy).
   * Returns how, or undefined when it is not a FUSE mount.
   */
  abortFuse(mountpoint: string): 'fusectl' | 'umount -f' | undefined {
    const m = mounts().find((e) => e.mountpoint === path.resolve(mountpoint) && e.fsType.startsWith('fuse'));
    const minor = m?.device.split(':')[1];
    if (!minor) return undefined;
    const abort = `/sys/fs/fuse/connections/${minor}/abort`;
    if (fs.existsSync(abort)) {
      fs.writeFileSync(abort, '1');
      return 'fusectl';
    }
    spawnSync('umount', ['-f', path.resolve(mountpoint)], { stdio: 'ignore', timeout: 30000 });
    return 'umount -f';
  }

  /** kill -9, as a crash would. The FUSE mount is left hanging, as after a real crash. */
  async killDaemon(h: DaemonHandle): Promise<void> {
    h.child.kill('SIGKILL');
    await h.exited;
  }

  attachLoop(file: string, opts: { directIo?: boolean; sectorSize?: number } = {}): string {
    const args = loopAttachArgs(file, { directIo: opts.directIo !== false, sectorSizeBytes: opts.sectorSize ?? 4096 });
    // `losetup -f` can race with another process taking the same free device: try again.
    let dev = '';
    for (let attempt = 0; ; attempt++) {
      try {
        dev = execFileSync('losetup', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
        break;
      } catch (err) {
        if (attempt >= 4) throw err;
        execFileSync('sleep', [String(0.1 * (attempt + 1))]);
      }
    }
    // The name is reused by whoever attaches next once this one is detached: remember what backs it.
    const backing = loopBackingFile(dev) ?? file;
    this.onCleanup(`detach ${dev}`, () => detachLoop(dev, backing));
    return dev;
  }

  mkfsExt4(dev: string): void {
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', dev], { stdio: 'pipe' });
  }

  mountFs(dev: string, dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', [dev, dir], { stdio: 'pipe' });
    this.onCleanup(`umount ${dir}`, () => void spawnSync('umount', [dir], { stdio: 'ignore' }));
  }

  umountFs(dir: string): void {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  }

  /** Runs `fn` at cleanup, before everything registered earlier. */
  onCleanup(what: string, fn: () => void | Promise<void>): void {
    this.cleanups.push({ what, fn });
  }

  /** Undoes everything, newest first; never throws. */
  async cleanup(): Promise<void> {
    while (this.cleanups.length) {
      const c = this.cleanups.pop();
      if (!c) break;
      try {
        await c.fn();
      } catch (err) {
        process.stderr.write(`lab cleanup: ${c.what}: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
}

/** Each thread's name, wait channel and kernel stack (root only), to show where a hung process waits. */
export function threadStacks(pid: number | undefined, depth = 2): string {
  if (pid === undefined) return '(no pid)';
  const dir = `/proc/${pid}/task`;
  let tids: string[];
  try {
    tids = fs.readdirSync(dir);
  } catch {
    return '(gone)';
  }
  const read = (f: string): string => {
    try {
      return fs.readFileSync(f, 'utf8').trim();
    } catch (err) {
      return `(${err instanceof Error ? err.message : String(err)})`;
    }
  };
  const own = tids.map((t) => `${t} ${read(`${dir}/${t}/comm`)} wchan=${read(`${dir}/${t}/wchan`)}\n${read(`${dir}/${t}/stack`)}`);
  // Its children too (a fusermount it waits for, say), one level down.
  const children = depth > 0 ? tids.flatMap((t) => read(`${dir}/${t}/children`).split(/\s+/).filter((c) => /^\d+$/.test(c))) : [];
  const theirs = children.map((c) => `child ${c}: ${read(`/proc/${c}/cmdline`).replace(/\0/g, ' ')}\n${threadStacks(Number(c), depth - 1)}`);
  return [...own, ...theirs].join('\n');
}

/** The JavaScript stack and the libuv handles of a live server, from Node's diagnostic report (needs its event loop). */
export async function diagnosticReport(h: DaemonHandle): Promise<string> {
  const dir = h.reportDir;
  if (!dir || !h.child.kill('SIGUSR2')) return 'No diagnostic report.';
  for (let i = 0; i < 20; i++) {
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (file) {
      try {
        const r = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { javascriptStack?: { stack?: string[] }; libuv?: Array<Record<string, unknown>> };
        const handles = (r.libuv ?? []).filter((x) => x.is_active && x.is_referenced).map((x) => JSON.stringify(x));
        return `Its JavaScript stack (empty when idle):\n${(r.javascriptStack?.stack ?? []).join('\n')}\nWhat keeps it alive (active, referenced libuv handles):\n${handles.join('\n')}`;
      } catch {
        // still being written
      }
    }
    await sleep(100);
  }
  return 'No diagnostic report within 2 s (its event loop is blocked).';
}

/** Detaches `dev` only while `backingFile` still backs it, so a device another process attached since is left alone. */
export function detachLoop(dev: string, backingFile: string): void {
  if (loopBackingFile(dev) !== backingFile) return;
  const r = spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
  if (r.status !== 0 && loopBackingFile(dev) === backingFile) spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until cond() holds; throws with `what` after timeoutMs. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export function sha256File(p: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

/** Writes a tree of files with random content; returns relative path -> sha256. */
export function writeRandomTree(root: string, totalBytes: number, seed = 1): Map<string, string> {
  const sums = new Map<string, string>();
  const sizes = [4096, 65536, 1 << 20, 3 * (1 << 20) + 123, 7 * (1 << 20)];
  let written = 0;
  let i = 0;
  while (written < totalBytes) {
    const size = Math.min(sizes[(i + seed) % sizes.length] as number, totalBytes - written);
    const rel = path.join(`dir${i % 4}`, `file${i}.bin`);
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    const data = crypto.randomBytes(size);
    fs.writeFileSync(abs, data);
    sums.set(rel, crypto.createHash('sha256').update(data).digest('hex'));
    written += size;
    i++;
  }
  return sums;
}

export function checkTree(root: string, sums: Map<string, string>): string[] {
  const bad: string[] = [];
  for (const [rel, sum] of sums) if (sha256File(path.join(root, rel)) !== sum) bad.push(rel);
  return bad;
}

export function dropCaches(): void {
  execFileSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

export interface Extent {
  logicalBlock: number;
  physicalBlock: number;
  blockCount: number;
}

/** The extents of a file, in 4096-byte blocks, from `filefrag -v -b4096`. */
export function fileExtents(file: string): Extent[] {
  const out = execFileSync('filefrag', ['-v', '-b4096', file], { encoding: 'utf8' });
  const extents: Extent[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):/.exec(line);
    if (m) extents.push({ logicalBlock: Number(m[1]), physicalBlock: Number(m[2]), blockCount: Number(m[3]) });
  }
  return extents;
}
