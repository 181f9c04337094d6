/**
 * unmount: asks the daemon over its control socket to stop. Without an
 * answer it clears the mount only when its server is dead: a daemon pid that
 * is alive (mounts table), or a mount that still answers, is never forced.
 * A dead server's mount with loop devices still on its files is left to
 * `recover` (refused here, nothing changed).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { request, socketPathFor } from '../../daemon/control.js';
import { isMountpoint, mounts } from '../../daemon/mounts.js';
import { RemapfsError } from '../../errors.js';
import { lazyUnmountSync } from '../../fs/fuse-unmount.js';
import { processAlive, Store } from '../../store/db.js';
import { dbPath } from '../common.js';
import { loopsUnder } from './recover.js';

interface Args {
  db?: string;
  mountpoint: string;
  force: boolean;
}

export const unmountCommand: CommandModule<object, Args> = {
  command: 'unmount <mountpoint>',
  describe: 'Stop the remapfs mount or simulator at <mountpoint> (refused while a loop device or program holds a file open)',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'unmount even with open handles (their I/O will fail)' }),
  handler: async (argv) => {
    dbPath(argv); // an empty REMAPFS_DB is refused before the daemon is asked to stop, not after
    const mnt = path.resolve(argv.mountpoint);
    const entry = mounts().find((m) => m.mountpoint === mnt);
    if (!entry || !entry.fsType.startsWith('fuse') || entry.source !== 'remapfs') {
      throw new RemapfsError('unmount', mnt, fs.existsSync(mnt) ? 'not a remapfs mount' : 'no such directory');
    }
    const socket = socketPathFor(mnt);
    let served = false;
    if (fs.existsSync(socket)) {
      try {
        await request(socket, { op: 'shutdown', force: argv.force }, 60000);
        served = true;
      } catch (err) {
        // A refusal (busy) is final; a dead socket means the server died.
        if (!(err instanceof RemapfsError && err.op === 'contact daemon')) throw err;
      }
    }
    if (served) {
      for (let i = 0; i < 300 && isMountpoint(mnt); i++) await sleep(100);
      const pid = daemonPid(argv, mnt);
      for (let i = 0; i < 300 && pid !== undefined && processAlive(pid); i++) await sleep(100);
      if (isMountpoint(mnt)) throw new RemapfsError('unmount', mnt, 'the server acknowledged but the mount is still there');
      process.stderr.write(`remapfs: unmounted ${mnt}\n`);
      return;
    }
    // No answer: clear the mount only if its server is dead (kill -9 or a crash); never force a live one.
    const pid = daemonPid(argv, mnt);
    if (pid !== undefined && processAlive(pid)) {
      throw new RemapfsError('unmount', mnt, `its daemon (pid ${pid}) is alive but its control socket ${socket} ${fs.existsSync(socket) ? 'does not answer' : 'is gone'}`, `refusing to force it; stop it with "kill -TERM ${pid}" (it unmounts when no handle is open)`);
    }
    if (mountAnswers(mnt)) {
      throw new RemapfsError('unmount', mnt, `its server is alive but its control socket ${socket} ${fs.existsSync(socket) ? 'does not answer' : 'is gone'}`, 'refusing to force it; stop the process serving it with SIGTERM');
    }
    // Loop devices over its files would be left pointing at a dead file that no path names any more (recover could not
    // find them then): that is recover's work, which also unmounts the file systems on them.
    const loops = loopsUnder(mnt);
    if (loops.length) {
      const what = loops.map((l) => `${l.device} (on ${path.basename(l.backingFile)}${l.mountedAt.length ? `, mounted at ${l.mountedAt.join(', ')}` : ''})`).join(', ');
      throw new RemapfsError('unmount', mnt, `its server has died, and loop devices are still attached to its files: ${what}`, `run "remapfs recover ${mnt}", which unmounts what sits on them, detaches them and clears the mount`);
    }
    const r = lazyUnmountSync(mnt);
    if (!r.ok) throw new RemapfsError('unmount', mnt, `${r.command}: ${r.error}`);
    forgetMount(argv, mnt);
    process.stderr.write(`remapfs: removed the stale mount at ${mnt} (its server had died)\n`);
  },
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The pid of the daemon registered for `mnt` in the database, if there is a database. */
function daemonPid(argv: { db?: string }, mnt: string): number | undefined {
  if (!fs.existsSync(dbPath(argv))) return undefined;
  const store = Store.open(dbPath(argv), { create: false });
  try {
    return store.mounts.get(mnt)?.pid;
  } finally {
    store.close();
  }
}

function forgetMount(argv: { db?: string }, mnt: string): void {
  if (!fs.existsSync(dbPath(argv))) return;
  const store = Store.open(dbPath(argv), { create: false });
  try {
    store.mounts.forget(mnt);
  } finally {
    store.close();
  }
}

/**
 * True when the FUSE server behind `mnt` still answers: a dead one makes every
 * access fail at once with ENOTCONN. Asked in a child with a time limit, so a
 * hung server counts as alive instead of hanging this command.
 */
function mountAnswers(mnt: string): boolean {
  const r = spawnSync('ls', ['-a', mnt], { encoding: 'utf8', timeout: 5000 }); // readdir always reaches the server (no cache)
  if (r.error || r.signal) return true;
  return r.status === 0 || !/not connected/i.test(r.stderr ?? '');
}
