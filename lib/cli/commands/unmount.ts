import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { request } from '../../daemon/control';
import { mounts } from '../../daemon/mounts';
import { RemapfsError } from '../../errors';
import { processAlive } from '../../store/db';
import { withStore } from '../common';

interface Args {
  db?: string;
  mountpoint: string;
  force: boolean;
}

export const unmountCommand: CommandModule<object, Args> = {
  command: 'unmount <mountpoint>',
  describe: 'Stop the daemon serving <mountpoint> (refused while a loop device or program holds a file open)',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'unmount even with open handles (their I/O will fail)' }) as never,
  handler: async (argv) => {
    const mnt = path.resolve(argv.mountpoint);
    await withStore(argv, false, async (store) => {
      const daemon = store.liveMounts().find((m) => m.mountpoint === mnt);
      if (daemon) {
        await request(daemon.socket, { op: 'shutdown', force: argv.force });
        for (let i = 0; i < 300 && processAlive(daemon.pid); i++) await new Promise((r) => setTimeout(r, 100));
        if (processAlive(daemon.pid)) throw new RemapfsError('unmount', mnt, `daemon pid ${daemon.pid} did not exit`);
        process.stderr.write(`remapfs: unmounted ${mnt}\n`);
        return;
      }
      // A daemon that died (kill -9) leaves its FUSE mount behind: clear it.
      const stale = mounts().find((m) => m.mountpoint === mnt && m.fsType.startsWith('fuse') && m.source === 'remapfs');
      if (!stale) {
        throw new RemapfsError('unmount', mnt, fs.existsSync(mnt) ? 'not a remapfs mount' : 'no such directory');
      }
      try {
        execFileSync('fusermount', ['-uz', mnt], { stdio: 'pipe' });
      } catch (err) {
        throw new RemapfsError('unmount', mnt, (err as { stderr?: Buffer }).stderr?.toString().trim() || err);
      }
      store.db.prepare('DELETE FROM mounts WHERE mountpoint = ?').run(mnt);
      process.stderr.write(`remapfs: removed the stale mount at ${mnt} (its daemon had died)\n`);
    });
  },
};
