/**
 * recover: clears what a crashed daemon left (loop devices over its files,
 * file systems on them, the dead FUSE mount, its row in the mounts table).
 *
 * It acts only on a directory with a record of a remapfs mount: a row in the
 * database's mounts table, the control socket a dead daemon left behind, or a
 * kernel mount of type fuse.remapfs. Anything else is refused before anything
 * is run, and only loop devices whose backing file sits directly in that
 * directory (a pair's file) are touched. A detached loop device that is still
 * open (a lazily unmounted file system letting go) is waited for, up to 10 s,
 * so that nothing writes through it once the pair is served again.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { loopBackingFile } from '../../block/loop.js';
import { sleepSyncMs } from '../../fsutil/sleep.js';
import { LINK_DIR, readLink } from '../../daemon/attach.js';
import { mounts } from '../../daemon/mounts.js';
import { RemapfsError } from '../../errors.js';
import { lazyUnmountCommands } from '../../fs/fuse-unmount.js';
import { dbPath } from '../common.js';
import { socketPathFor } from '../../daemon/control.js';
import { type MountRecord, processAlive, Store } from '../../store/db.js';

interface Args {
  db?: string;
  mountpoint: string;
  'dry-run': boolean;
}

interface LoopUse {
  device: string;
  backingFile: string;
  mountedAt: string[];
}

/** Loop devices whose backing file lies directly in `dir` (a pair's file), with the file systems mounted from them. */
export function loopsUnder(dir: string): LoopUse[] {
  const out: LoopUse[] = [];
  const all = mounts();
  for (const name of fs.existsSync('/sys/block') ? fs.readdirSync('/sys/block') : []) {
    if (!name.startsWith('loop')) continue;
    const backing = loopBackingFile(name);
    if (backing === undefined || path.dirname(backing) !== dir) continue;
    const device = `/dev/${name}`;
    out.push({ device, backingFile: backing, mountedAt: all.filter((m) => m.source === device).map((m) => m.mountpoint) });
  }
  return out;
}

/** The /dev/remapfs/<pair> links (remapfs attach) that name `device`. */
function linksTo(device: string): string[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(LINK_DIR);
  } catch {
    return [];
  }
  return names.map((n) => path.join(LINK_DIR, n)).filter((p) => readLink(p) === device);
}

export const recoverCommand: CommandModule<object, Args> = {
  command: 'recover <mountpoint>',
  describe: 'After a daemon crash: unmount what sits on its loop devices, detach them (and remove their /dev/remapfs links), and clear the dead mount',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .option('dry-run', { type: 'boolean', default: false, describe: 'only print what would be done' }),
  handler: (argv) => {
    const mnt = path.resolve(argv.mountpoint);
    const entry = mounts().find((m) => m.mountpoint === mnt);
    if (entry && !(entry.fsType.startsWith('fuse') && entry.source === 'remapfs')) throw new RemapfsError('recover', mnt, `not a remapfs mount (${entry.fsType})`);
    const row = mountRow(argv, mnt);
    if (row && processAlive(row.pid, row.startedAt, row.mountpoint)) throw new RemapfsError('recover', mnt, `its daemon (pid ${row.pid}) is running`, 'use "remapfs unmount" for a running daemon');
    if (!entry && !row && !fs.existsSync(socketPathFor(mnt))) {
      throw new RemapfsError('recover', mnt, 'no record of a remapfs mount here (not in the mounts table, no socket of a dead daemon, no remapfs mount)', 'name the directory a remapfs daemon served');
    }
    // A dead FUSE server leaves a mount whose every access fails with ENOTCONN.
    let alive = false;
    if (entry) {
      try {
        fs.readdirSync(mnt);
        alive = true;
      } catch (err) {
        alive = (err as { code?: string }).code !== 'ENOTCONN';
      }
    }
    if (entry && alive) throw new RemapfsError('recover', mnt, 'the mount is alive', 'use "remapfs unmount" for a running daemon');
    /** A command, and for `losetup -d` the loop device that must then let go of its pair's file. */
    const steps: Array<[string, string[], LoopUse?]> = [];
    for (const loop of loopsUnder(mnt)) {
      for (const at of loop.mountedAt) steps.push(['umount', ['-l', at]]);
      steps.push(['losetup', ['-d', loop.device], loop]);
      for (const link of linksTo(loop.device)) steps.push(['rm', ['-f', link]]);
    }
    if (entry) steps.push(lazyUnmountCommands(mnt)[0] as [string, string[]]);
    if (steps.length === 0) {
      process.stdout.write(`nothing to recover at ${mnt}\n`);
      return;
    }
    for (const [cmd, args, detached] of steps) {
      process.stdout.write(`${argv['dry-run'] ? 'would run' : 'running'}: ${cmd} ${args.join(' ')}\n`);
      if (argv['dry-run']) continue;
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new RemapfsError('recover', mnt, `${cmd} ${args.join(' ')} failed: ${(r.stderr || '').trim()}`);
      // A loop device still open (a lazily unmounted file system letting go) detaches when closed: wait for it,
      // so that nothing can write through it once the pair is served again.
      if (detached && !waitDetached(detached, DETACH_WAIT_MS)) {
        const dev = detached.device;
        throw new RemapfsError('recover', mnt, `${dev} is still attached after ${DETACH_WAIT_MS / 1000} s: something still holds it open`, `find it with "fuser -vm ${dev}", close it, and run recover again`);
      }
    }
    if (!argv['dry-run'] && fs.existsSync(dbPath(argv))) {
      const store = Store.open(dbPath(argv), { create: false });
      try {
        store.mounts.forget(mnt);
      } finally {
        store.close();
      }
    }
    if (!argv['dry-run']) fs.rmSync(socketPathFor(mnt), { force: true });
    process.stdout.write(`recovered ${mnt}: start "remapfs mount ${mnt}" again, re-attach the loop device, and run fsck before mounting the file system\n`);
  },
};

const DETACH_WAIT_MS = 10_000;

/** Waits until the loop device no longer has its pair's file (another may take the device at once); false after `ms`. */
function waitDetached(loop: LoopUse, ms: number): boolean {
  const deadline = Date.now() + ms;
  while (loopBackingFile(loop.device) === loop.backingFile) {
    if (Date.now() >= deadline) return false;
    sleepSyncMs(50);
  }
  return true;
}

/** The mounts-table row for `mnt`, if the database exists and has one. */
function mountRow(argv: { db?: string }, mnt: string): MountRecord | undefined {
  if (!fs.existsSync(dbPath(argv))) return undefined;
  const store = Store.open(dbPath(argv), { create: false });
  try {
    return store.mounts.get(mnt);
  } finally {
    store.close();
  }
}
