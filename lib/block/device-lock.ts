/**
 * Exclusive ownership of devices. Whoever writes to a pair's devices holds an
 * flock(LOCK_EX) on every path of each device's chain (alias.ts): the image
 * file or device node itself, and the backing files under a loop device, so a
 * loop device over a pair's image and the image take the same lock. The daemon
 * holds it for as long as it serves the pair; a CLI command for as long as it
 * runs. Writers also open block devices with O_EXCL (file-device.ts), which
 * the kernel enforces across a disk and its partitions.
 *
 * Each lock lives on its own read-only descriptor (close-on-exec, as Node opens them), apart from
 * the descriptors that do I/O. A dead process's locks go with it (kill -9
 * included), so there is nothing stale to clean up.
 *
 * Several locks are taken all-or-nothing with LOCK_NB and retried until the
 * deadline, so two processes that lock main and spare in different orders
 * cannot deadlock. Within one process a second lock on the same file fails
 * too (flock is per open file description): one holder per device.
 */
import * as fs from 'fs';
import { isDaemonCommand, remapfsProcess } from '../fsutil/proc.js';
import { RemapfsError } from '../errors.js';
import { nativeHelpers, nativeLoadError, type NativeHelpers } from '../native/index.js';
import { majorMinor, resolveExtent } from './alias.js';
import { sleepSyncMs } from '../fsutil/sleep.js';

const RETRY_MS = 50;

export interface LockOptions {
  /** What is being done and to what, for the error ("remap", "pair r"). */
  op: string;
  object: string;
  /** How long to wait for another holder to let go; 0 tries once. A serving daemon is never waited for. */
  waitMs: number;
  /** Called once if the first try finds the devices busy and waitMs > 0. */
  onWait?: (why: string) => void;
}

function helpers(op: string, object: string): NativeHelpers {
  const h = nativeHelpers();
  if (!h) throw new RemapfsError(op, object, `cannot lock its devices: ${nativeLoadError()}`);
  return h;
}

/** Every path to lock for these devices, deduplicated, in a stable order. */
export function lockPaths(devicePaths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of devicePaths) {
    let chain: string[];
    try {
      chain = resolveExtent(p).chain;
    } catch {
      chain = [p];
    }
    for (const c of chain) out.add(c);
  }
  return [...out].sort();
}

export interface Holder {
  /** "pid 123 (node remapfs mount /srv)", "this process" or "another process". */
  text: string;
  /** A remapfs daemon (mount or simulate): it holds its devices for as long as it runs, so waiting is futile. */
  serving: boolean;
}

/** Who holds an flock on this path, from /proc/locks. */
export function lockHolder(p: string): Holder {
  try {
    const st = fs.statSync(p);
    const { major, minor } = majorMinor(st.dev);
    const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
    for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" ("->" marks a waiter)
      if (f[1] !== 'FLOCK' || f[4] === undefined || f[5] !== want) continue;
      const pid = Number(f[4]);
      if (pid === process.pid) return { text: 'this process', serving: false };
      const ours = remapfsProcess(pid);
      let args: string[] = ours?.args ?? [];
      if (!ours) {
        try {
          args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
        } catch {
          // gone meanwhile
        }
      }
      const shown = args.map((a) => (a.length > 60 ? `...${a.slice(-57)}` : a)).slice(0, 4).join(' ');
      const serving = ours !== undefined && isDaemonCommand(ours.command);
      return { text: `pid ${pid}${shown ? ` (${shown})` : ''}`, serving };
    }
  } catch {
    // no /proc/locks: say less
  }
  return { text: 'another process', serving: false };
}

/** The devices are held by another process (or another lock of this one). */
export class DeviceBusyError extends RemapfsError {
  /** Held by a serving daemon, which will not let go. */
  serving = false;
}

export class DeviceLock {
  private fds: number[];
  readonly paths: readonly string[];

  private constructor(paths: string[], fds: number[]) {
    this.paths = paths;
    this.fds = fds;
  }

  /** Locks every device (and what backs it) exclusively, or throws naming the holder. */
  static acquire(devicePaths: readonly string[], opts: LockOptions): DeviceLock {
    const native = helpers(opts.op, opts.object);
    const paths = lockPaths(devicePaths);
    const deadline = Date.now() + opts.waitMs;
    let told = false;
    for (;;) {
      const fds: number[] = [];
      let busy: string | undefined;
      try {
        for (const p of paths) {
          const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
          fds.push(fd);
          if (!native.flock(fd, 'exclusive', false)) {
            busy = p;
            break;
          }
        }
      } catch (err) {
        for (const fd of fds) fs.closeSync(fd);
        throw new RemapfsError(opts.op, opts.object, err, 'cannot open a device to lock it');
      }
      if (!busy) return new DeviceLock(paths, fds);
      const holder = lockHolder(busy);
      for (const fd of fds) fs.closeSync(fd);
      const why = `${busy} is in use by ${holder.text}`;
      if (Date.now() >= deadline || holder.serving) {
        const err = new DeviceBusyError(opts.op, opts.object, why, holder.serving ? 'a daemon holds it (serving a pair, or importing one onto it): go through that daemon, or unmount it first' : 'one remapfs process writes to a device at a time: try again when it is done');
        err.serving = holder.serving;
        throw err;
      }
      if (!told) opts.onWait?.(why);
      told = true;
      sleepSyncMs(Math.min(RETRY_MS, Math.max(1, deadline - Date.now())));
    }
  }

  get held(): boolean {
    return this.fds.length > 0;
  }

  release(): void {
    for (const fd of this.fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.fds = [];
  }
}
