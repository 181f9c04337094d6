import type { CommandModule } from 'yargs';
import { OPEN_MODES, OpenMode } from '../../block/file-device';
import { Daemon } from '../../daemon/daemon';
import { Store } from '../../store/db';
import { dbPath } from '../common';
import { reportError } from '../report';

interface Args {
  db?: string;
  mountpoint: string;
  'open-mode': string;
}

export const mountCommand: CommandModule<object, Args> = {
  command: 'mount <mountpoint>',
  describe: 'Serve every pair as <mountpoint>/<name>; stays in the foreground until SIGINT/SIGTERM or unmount',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an empty directory' })
      .option('open-mode', { type: 'string', choices: OPEN_MODES as string[], default: 'auto', describe: 'how devices are opened (see docs/architecture.md)' }) as never,
  handler: async (argv) => {
    const store = Store.open(dbPath(argv), { create: false });
    const daemon = new Daemon({ store, mountpoint: argv.mountpoint, mode: argv['open-mode'] as OpenMode });
    let names: string[];
    try {
      names = await daemon.start();
    } catch (err) {
      store.close();
      throw err;
    }
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      daemon.stop(signals > 1).catch((err) => {
        reportError(err);
        process.stderr.write(`remapfs: still serving after ${sig}; send it again to force the unmount\n`);
      });
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.stdout.write(`remapfs: serving ${names.join(', ')} at ${daemon.mountpoint} (pid ${process.pid})\n`);
    await daemon.done;
    store.close();
    process.stderr.write(`remapfs: unmounted ${daemon.mountpoint}\n`);
    // Let the control reply that asked for the shutdown reach its caller, then leave.
    setTimeout(() => process.exit(0), 200);
  },
};
