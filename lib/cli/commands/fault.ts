import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { request, socketPathFor } from '../../daemon/control.js';
import { RemapfsError, UsageError } from '../../errors.js';
import { parseSectorList } from '../../sim/sectors.js';
import type { FaultState } from '../../sim/simulator.js';
import { printJson } from '../common.js';
import { countOption } from '../options.js';

interface Args {
  mountpoint: string;
  action: string;
  sectors: string[];
  slow: boolean;
  'delay-ms'?: number;
  json: boolean;
}

const ACTIONS = ['add', 'remove', 'list', 'clear'] as const;

export const faultCommand: CommandModule<object, Args> = {
  command: 'fault <mountpoint> <action> [sectors..]',
  describe: 'Change the bad (or, with --slow, slow) sectors of a running "remapfs simulate"',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'the mount point given to simulate' })
      .positional('action', { type: 'string', choices: ACTIONS as unknown as string[], demandOption: true })
      .positional('sectors', { type: 'string', array: true, default: [], describe: 'sectors or ranges, e.g. 7 100-163' })
      .option('slow', { type: 'boolean', default: false, describe: 'act on slow sectors instead of bad ones' })
      .option('delay-ms', countOption('delay-ms', 'new delay of slow sectors'))
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (argv) => {
    const action = argv.action as (typeof ACTIONS)[number];
    let sectors: number[];
    try {
      sectors = parseSectorList(argv.sectors);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    if ((action === 'add' || action === 'remove') && sectors.length === 0) throw new UsageError(`${action} needs sectors`);
    const delayMs = argv['delay-ms'];
    if (delayMs !== undefined && !argv.slow) throw new UsageError('--delay-ms sets the delay of slow sectors: give --slow with it');
    const mnt = path.resolve(argv.mountpoint);
    const socket = socketPathFor(mnt);
    if (!fs.existsSync(socket)) throw new RemapfsError('fault', mnt, 'no remapfs simulator runs there (it has no control socket)', 'name the mount point given to a running "remapfs simulate"');
    const state = (await request(socket, {
      op: 'fault',
      action,
      kind: argv.slow ? 'slow' : 'bad',
      sectors,
      ...(delayMs !== undefined ? { delayMs } : {}),
    })) as FaultState;
    if (argv.json) return printJson({ version: 1, ...state });
    process.stdout.write(`bad sectors (${state.badCount}): ${state.bad || '-'}\nslow sectors (${state.slowCount}, ${state.delayMs} ms): ${state.slow || '-'}\n`);
  },
};
