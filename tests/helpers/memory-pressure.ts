/**
 * Issue 13, case 7, shared by tests/privileged/memory-pressure.test.ts (daemon
 * flagged PR_SET_IO_FLUSHER) and tests/e2e/memory-pressure.test.ts (native
 * engine, no flag). The daemon and a writer share one 192 MiB memory cgroup;
 * the writer puts 3 GiB into ext4 on a loop device over the pair's file. Its
 * dirty ext4 pages are charged to the cgroup and written back through the
 * loop device, i.e. through the daemon. Once the cgroup is full, an
 * allocation or page fault of the daemon reclaims from it, and (cgroup v1)
 * reclaim waits for pages under writeback: writeback only the daemon can
 * finish (docs/architecture.md, "Memory limits").
 *
 * Why 3 GiB: 16 times the limit, so the cgroup is refilled many times over
 * (its failcnt is checked). The 48 files of 64 MiB each start with their own
 * header line, so a block that lands in another file's place is caught.
 *
 * It must never hang: every step that goes through the daemon runs in a child
 * process under a watchdog. When the daemon does no I/O for STALL_MS while a
 * step runs, the watchdog records where the threads wait, aborts the FUSE
 * connection (the only way out) and throws.
 */
import { spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { type DaemonHandle, type Lab, sleep, threadStacks } from '../../lib/lab/lab.js';
import { MemoryCgroup } from '../../lib/lab/memcg.js';

const MiB = 1024 * 1024;
export const LIMIT_BYTES = 192 * MiB;
const FILE_BYTES = 64 * MiB;
const FILES = 48; // 3 GiB
const STALL_MS = 60000;

interface Watched {
  lab: Lab;
  daemon: DaemonHandle;
  fuseMountpoint: string;
}

function daemonIoBytes(pid: number): number {
  const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? 0);
  return field('rchar') + field('wchar');
}

function states(pid: number): string {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .map((t) => {
        const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      })
      .join('');
  } catch {
    return '(gone)';
  }
}

/** Runs `sh -c script`; throws on failure, or on a stall (after aborting the FUSE connection). */
async function runWatched(w: Watched, what: string, script: string): Promise<string> {
  const pid = w.daemon.child.pid!;
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let last = daemonIoBytes(pid);
  let lastChange = Date.now();
  for (;;) {
    const code = await Promise.race([exited, sleep(1000).then(() => undefined)]);
    if (code !== undefined) {
      if (code !== 0) throw new Error(`${what} failed (${code ?? child.signalCode}): ${out.trim()}\ndaemon:\n${w.daemon.output()}`);
      return out;
    }
    if (w.daemon.child.exitCode !== null || w.daemon.child.signalCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the daemon died during ${what} (${w.daemon.child.exitCode ?? w.daemon.child.signalCode}):\n${w.daemon.output()}`);
    }
    const now = daemonIoBytes(pid);
    if (now !== last) {
      last = now;
      lastChange = Date.now();
      continue;
    }
    if (Date.now() - lastChange < STALL_MS) continue;
    const where = `daemon threads (states ${states(pid)}):\n${threadStacks(pid, 0)}\n${what} (states ${states(child.pid!)}):\n${threadStacks(child.pid, 1)}`;
    let aborted: string;
    try {
      aborted = `FUSE connection aborted (${w.lab.abortFuse(w.fuseMountpoint) ?? 'no FUSE mount found'})`;
    } catch (err) {
      aborted = `aborting the FUSE connection failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${what} hung: the daemon did no I/O for ${STALL_MS / 1000} s; ${aborted}.\n${where}\ndaemon output:\n${w.daemon.output()}`);
  }
}

export interface PressureResult {
  limitHits: number;
  /** rchar + wchar of the daemon over the whole run. */
  servedBytes: number;
  peakBytes: number;
  /** file name -> sha256, as read back after dropping caches. */
  got: Map<string, string>;
  want: Map<string, string>;
}

/**
 * The whole scenario. `start` starts the daemon on `mnt` (how is the caller's choice) and checks it;
 * it is moved into the cgroup before the pair is used.
 */
export async function memoryPressure(lab: Lab, start: (mnt: string) => Promise<DaemonHandle>): Promise<PressureResult> {
  // Created first, so it is removed last, after every process in it has gone.
  const cg = MemoryCgroup.create(`remapfs-lab-${process.pid}-${Date.now()}`, LIMIT_BYTES);
  lab.onCleanup(`remove memory cgroup ${cg.dir}`, () => cg.remove());

  const main = lab.image('main.img', 4096 * MiB);
  const spare = lab.image('spare.img', 64 * MiB);
  lab.ok(['init', 'disk0', '--main', main, '--spare', spare]);
  const mnt = lab.mkdir('mnt');
  const daemon = await start(mnt);
  cg.addPid(daemon.child.pid!);
  const ioAtStart = daemonIoBytes(daemon.child.pid!);
  const w: Watched = { lab, daemon, fuseMountpoint: mnt };

  const loop = lab.attachLoop(path.join(mnt, 'disk0'));
  lab.mkfsExt4(loop);
  const ext = lab.path('ext');
  lab.mountFs(loop, ext);
  // After an abort, ext4 may refuse a plain umount; a lazy one still lets the loop device go.
  lab.onCleanup(`lazy umount ${ext}`, () => void spawnSync('sh', ['-c', `umount ${ext} 2>/dev/null || umount -l ${ext}`]));

  const pattern = crypto.randomBytes(FILE_BYTES);
  const patternFile = lab.path('pattern.bin');
  fs.writeFileSync(patternFile, pattern);
  const header = (i: number) => `remapfs memory-pressure file ${String(i).padStart(4, '0')}\n`;
  const want = new Map<string, string>();
  for (let i = 0; i < FILES; i++) want.set(`f${i}`, crypto.createHash('sha256').update(header(i)).update(pattern).digest('hex'));

  // The writer joins the cgroup before it writes anything: its page cache is charged there.
  // sync -f: only the file system under test, never the whole machine.
  await runWatched(
    w,
    'the writer',
    `echo $$ > ${cg.procsFile} && for i in $(seq 0 ${FILES - 1}); do ` +
      `{ printf 'remapfs memory-pressure file %04d\\n' $i; cat ${patternFile}; } | dd of=${ext}/f$i bs=1M iflag=fullblock status=none || exit 1; done && sync -f ${ext}`,
  );
  const limitHits = cg.limitHits();
  // Unmounting ext4 writes back and drops its cache, so the read below goes through the daemon.
  await runWatched(w, 'unmount and mount ext4', `umount ${ext} && mount ${loop} ${ext}`);
  const sums = await runWatched(w, 'reading the files back', `cd ${ext} && sha256sum f*`);
  const got = new Map(sums.trim().split('\n').map((l) => [l.split(/\s+/)[1] ?? '', l.split(/\s+/)[0] ?? ''] as [string, string]));
  if (daemon.child.exitCode !== null) throw new Error(`the daemon exited ${daemon.child.exitCode}:\n${daemon.output()}`);
  return { limitHits, servedBytes: daemonIoBytes(daemon.child.pid!) - ioAtStart, peakBytes: cg.peakBytes(), got, want };
}
