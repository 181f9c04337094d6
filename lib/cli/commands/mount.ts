import * as path from 'path';
import type { CommandModule } from 'yargs';
import { OPEN_MODES, type OpenMode } from '../../block/file-device.js';
import { Daemon } from '../../daemon/daemon.js';
import { Store } from '../../store/db.js';
import { dbPath } from '../common.js';
import { runInForeground } from '../foreground.js';
import { engineOf, engineOption } from '../engine.js';

interface Args {
  db?: string;
  mountpoint: string;
  'open-mode': string;
  engine?: string;
  watch: string[];
  attach: boolean;
}

export const mountCommand: CommandModule<object, Args> = {
  command: 'mount <mountpoint>',
  describe: 'Serve every pair as <mountpoint>/<name>; stays in the foreground until SIGINT/SIGTERM or unmount',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an empty directory' })
      .option('watch', { type: 'string', array: true, default: [], describe: 'hot-plug: watch this directory (and /dev) for pairs to attach and detach (repeatable)' })
      .option('attach', { type: 'boolean', default: false, describe: 'put every pair served on a loop device linked as /dev/remapfs/<name>; detach them on stop' })
      .option('open-mode', { type: 'string', choices: OPEN_MODES as string[], default: 'auto', describe: 'how devices are opened (see docs/architecture.md)' })
      .option('engine', engineOption),
  handler: async (argv) => {
    const store = Store.open(dbPath(argv), { create: argv.watch.length > 0 });
    store.limitCache();
    const daemon = new Daemon({ store, mountpoint: argv.mountpoint, mode: argv['open-mode'] as OpenMode, engine: engineOf(argv.engine), watchDirs: argv.watch.map((d) => path.resolve(d)), attach: argv.attach });
    let names: string[];
    try {
      names = await daemon.start();
    } catch (err) {
      store.close();
      throw err;
    }
    const what = names.length ? names.join(', ') : 'no pairs yet (watching for them)';
    await runInForeground(daemon, `remapfs: serving ${what} at ${daemon.mountpoint} (pid ${process.pid})`, () => store.close());
  },
};
