import type { CommandModule } from 'yargs';
import { DeviceLock } from '../../block/device-lock.js';
import { createPair, planPair } from '../../pair/create.js';
import { UsageError } from '../../errors.js';
import { pairNameProblem } from '../../format/validate.js';
import { validateBlockSize } from '../../format/layout.js';
import { CLI_LOCK_WAIT_MS, formatBytes, withStore } from '../common.js';
import { countOption } from '../options.js';
import { withStopSignalsHeld } from '../signals.js';

interface Args {
  db?: string;
  name: string;
  main: string;
  spare: string;
  'block-size': number;
  force: boolean;
}

export const initCommand: CommandModule<object, Args> = {
  command: 'init <name>',
  describe: 'Pair a main device with a spare device and print the pair UUID',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'pair name; also the virtual file name' })
      .option('main', { type: 'string', demandOption: true, describe: 'failing disk or image (block device or file)' })
      .option('spare', { type: 'string', demandOption: true, describe: 'spare device or image' })
      .option('block-size', countOption('block-size', 'remap unit in bytes, power of two from 512 to 65536', 4096))
      .option('force', { type: 'boolean', default: false, describe: 'overwrite remapfs metadata of another pair found on the spare' }) as never,
  handler: async (argv) => {
    const name = String(argv.name);
    const badName = pairNameProblem(name);
    if (badName) throw new UsageError(badName);
    const blockSize = argv['block-size'];
    const bad = validateBlockSize(blockSize);
    if (bad) throw new UsageError(bad);
    const plan = planPair(name, argv.main, argv.spare, blockSize, formatBytes);
    // Devices first, then the database (lib/pair/create.ts).
    const lock = DeviceLock.acquire([plan.main.realPath, plan.spare.realPath], {
      op: 'init',
      object: name,
      waitMs: CLI_LOCK_WAIT_MS,
    });
    try {
      await withStore(argv, true, async (store) => {
        // Row, slots and label all, or (on a refusal) none: a Ctrl-C in between would leave slots no database knows.
        const { pair, labelError } = await withStopSignalsHeld(
          () => createPair(store, plan, argv.force, lock),
          (c) => `init ${name}: made the pair (uuid ${c.pair.uuid})${c.labelError !== undefined ? `, but could not label the main (${describe(c.labelError)}; discovery will not recognise it)` : ''}`,
        );
        if (labelError !== undefined) {
          process.stderr.write(`remapfs: warning: could not label the main (${describe(labelError)}); discovery will not recognise it\n`);
        }
        process.stdout.write(`${pair.uuid}\n`);
        process.stderr.write(
          `remapfs: pair ${name}: main ${plan.main.realPath} (${formatBytes(plan.main.sizeBytes)}), spare ${plan.spare.realPath} with ${plan.poolBlocks - 1} free spare blocks of ${blockSize} bytes\n`,
        );
      });
    } finally {
      lock.release();
    }
  },
};

function describe(err: unknown): string {
  return err instanceof Error ? err.message : JSON.stringify(err);
}
