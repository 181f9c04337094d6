import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { importPair } from '../../discovery/importer.js';
import { CLI_LOCK_WAIT_MS, printJson, withStore } from '../common.js';
import { pairNameProblem } from '../../format/validate.js';

interface Args {
  db?: string;
  spare: string;
  main: string;
  name?: string;
  json: boolean;
}

export const importCommand: CommandModule<object, Args> = {
  command: 'import',
  describe: 'Bring a pair back from the metadata on its spare (after losing the database, or on another machine)',
  builder: (y) =>
    y
      .option('spare', { type: 'string', demandOption: true, describe: 'the spare device or image holding the metadata slots' })
      .option('main', { type: 'string', demandOption: true, describe: 'the main device or image of that pair' })
      .option('name', { type: 'string', describe: 'pair name (default: the name stored in the metadata)' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    if (argv.name !== undefined && pairNameProblem(argv.name)) throw new UsageError(pairNameProblem(argv.name) as string);
    await withStore(argv, true, (store) => {
      const r = importPair(store, argv.main, argv.spare, { ...(argv.name ? { name: argv.name } : {}), lockWaitMs: CLI_LOCK_WAIT_MS });
      if (argv.json) return printJson({ version: 1, pair: r.pair.name, uuid: r.pair.uuid, sequence: r.pair.metaSeq, remappedBlocks: r.remappedBlocks, sourceSlot: r.sourceSlot, repaired: r.repaired });
      process.stdout.write(`imported pair ${r.pair.name} (uuid ${r.pair.uuid}) from slot ${r.sourceSlot}, sequence ${r.pair.metaSeq}: ${r.remappedBlocks} remapped blocks\n`);
    });
  },
};
