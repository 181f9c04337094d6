import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { attachPair, describeDetach, detachPair, linkPath } from '../../daemon/attach.js';
import { RemapfsError } from '../../errors.js';
import { liveDaemon, requirePair, withStore } from '../common.js';

interface Args {
  db?: string;
  name: string;
}

interface Served {
  /** The pair's file at the live daemon's mount; undefined when no daemon serves the database. */
  file: string | undefined;
  mountpoint: string | undefined;
  blockSize: number;
}

function served(argv: Args): Promise<Served> {
  return withStore(argv, false, (store) => {
    const pair = requirePair(store, argv.name);
    const daemon = liveDaemon(store);
    return { file: daemon ? path.join(daemon.mountpoint, pair.name) : undefined, mountpoint: daemon?.mountpoint, blockSize: pair.blockSize };
  });
}

export const attachCommand: CommandModule<object, Args> = {
  command: 'attach <name>',
  describe: 'Attach a served pair to a loop device (direct I/O) and link it as /dev/remapfs/<name>; prints the loop device',
  builder: (y) => y.positional('name', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const { file, blockSize, mountpoint } = await served(argv);
    if (file === undefined) throw new RemapfsError('attach', argv.name, 'not served', 'start "remapfs mount" first');
    if (!fs.existsSync(file)) throw new RemapfsError('attach', argv.name, `not served by the daemon at ${mountpoint}`, 'its devices are missing, or it was added after the daemon started');
    const dev = await attachPair(argv.name, file, blockSize);
    process.stdout.write(`${dev}\n`);
    process.stderr.write(`remapfs: attached ${argv.name} as ${linkPath(argv.name)} (${dev})\n`);
  },
};

export const detachCommand: CommandModule<object, Args> = {
  command: 'detach <name>',
  describe: 'Detach the loop device of a pair and remove /dev/remapfs/<name> (refused while it is mounted)',
  builder: (y) => y.positional('name', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const { file } = await served(argv);
    const d = await detachPair(argv.name, file);
    process.stderr.write(d ? `remapfs: ${describeDetach(d, undefined)}; removed ${linkPath(argv.name)}\n` : `remapfs: removed the stale link ${linkPath(argv.name)}\n`);
  },
};
