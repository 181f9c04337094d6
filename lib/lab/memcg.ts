/**
 * A scratch memory cgroup for tests: a child of the cgroup this process is in
 * (so every limit above it still applies), with a hard memory limit, for
 * processes the test starts. cgroup v1 (`memory.limit_in_bytes`, the memory
 * controller's own hierarchy) and cgroup v2 (`memory.max`, when the memory
 * controller is enabled for children) are supported; otherwise create() throws
 * with the reason.
 *
 * Invariant: remove() leaves no directory behind and moves any process still
 * inside back to the parent first, so it can always run at cleanup.
 */
import * as fs from 'fs';
import * as path from 'path';
import { sleepSyncMs } from '../fsutil/sleep.js';

export type CgroupVersion = 1 | 2;

interface Hierarchy {
  version: CgroupVersion;
  /** Absolute path of this process's cgroup in that hierarchy. */
  dir: string;
}

export class MemoryCgroup {
  private removed = false;

  private constructor(
    readonly version: CgroupVersion,
    readonly dir: string,
    private readonly parentDir: string,
  ) {}

  /** Creates `<own cgroup>/<name>` with the limit; throws saying why when no memory controller is usable. */
  static create(name: string, limitBytes: number): MemoryCgroup {
    const h = findMemoryHierarchy();
    const dir = path.join(h.dir, name);
    fs.mkdirSync(dir);
    const cg = new MemoryCgroup(h.version, dir, h.dir);
    try {
      if (h.version === 1) {
        fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
      } else {
        fs.writeFileSync(path.join(dir, 'memory.max'), String(limitBytes));
        fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      }
    } catch (err) {
      cg.remove();
      throw err;
    }
    return cg;
  }

  /** The file a process writes its pid to, to move itself in (`echo $$ > ...`). */
  get procsFile(): string {
    return path.join(this.dir, 'cgroup.procs');
  }

  addPid(pid: number): void {
    fs.writeFileSync(this.procsFile, String(pid));
  }

  pids(): number[] {
    try {
      return fs.readFileSync(this.procsFile, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** How often the limit was hit (v1 memory.failcnt; v2 the "max" count in memory.events). */
  limitHits(): number {
    if (this.version === 1) return Number(fs.readFileSync(path.join(this.dir, 'memory.failcnt'), 'utf8'));
    const m = /^max (\d+)$/m.exec(fs.readFileSync(path.join(this.dir, 'memory.events'), 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  peakBytes(): number {
    const f = this.version === 1 ? 'memory.max_usage_in_bytes' : 'memory.peak';
    try {
      return Number(fs.readFileSync(path.join(this.dir, f), 'utf8'));
    } catch {
      return -1;
    }
  }

  /** Moves what is left to the parent and removes the directory; never throws. */
  remove(): void {
    if (this.removed) return;
    for (let attempt = 0; attempt < 50 && fs.existsSync(this.dir); attempt++) {
      for (const pid of this.pids()) {
        try {
          fs.writeFileSync(path.join(this.parentDir, 'cgroup.procs'), String(pid));
        } catch {
          // it exited meanwhile
        }
      }
      try {
        fs.rmdirSync(this.dir);
      } catch {
        // still busy for a moment after its last process left
        sleepSyncMs(100);
      }
    }
    this.removed = !fs.existsSync(this.dir);
    if (!this.removed) process.stderr.write(`memcg: could not remove ${this.dir}\n`);
  }
}

/** The hierarchy with a usable memory controller, v1 first (v2 needs it enabled in subtree_control). */
export function findMemoryHierarchy(): Hierarchy {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const why: string[] = [];
  // "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"
  const v1 = mounts.map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup' && (f[f.length - 1] ?? '').split(',').includes('memory'));
  const v1Path = own.map((l) => l.split(':')).find((f) => (f[1] ?? '').split(',').includes('memory'))?.[2];
  if (v1 && v1[4] && v1Path !== undefined) {
    const dir = path.join(v1[4], v1Path);
    if (fs.existsSync(path.join(dir, 'memory.limit_in_bytes'))) return { version: 1, dir };
    why.push(`cgroup v1: no memory.limit_in_bytes in ${dir}`);
  } else {
    why.push('cgroup v1: no memory controller mounted');
  }
  const v2 = mounts.map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2');
  const v2Path = own.find((l) => l.startsWith('0::'))?.slice(3);
  if (v2 && v2[4] && v2Path !== undefined) {
    const dir = path.join(v2[4], v2Path);
    const enabled = readWords(path.join(dir, 'cgroup.subtree_control'));
    if (enabled.includes('memory')) return { version: 2, dir };
    why.push(`cgroup v2: memory is not in ${path.join(dir, 'cgroup.subtree_control')} (enable it: echo +memory > that file, from a cgroup with no processes of its own)`);
  } else {
    why.push('cgroup v2: not mounted');
  }
  throw new Error(`no memory cgroup can be made here: ${why.join('; ')}`);
}

function readWords(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}
