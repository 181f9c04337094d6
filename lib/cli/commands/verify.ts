import type { CommandModule } from 'yargs';
import { formatVerifyReport } from '../../meta/verify.js';
import { RemapfsError } from '../../errors.js';
import { REBUILD_HINT } from '../../store/db.js';
import { opsFor, printJson, requirePair, withStore } from '../common.js';

interface Args {
  db?: string;
  name: string;
  json: boolean;
}

/** verify and repair differ only in whether they write. */
function checkCommand(repair: boolean): CommandModule<object, Args> {
  return {
    command: `${repair ? 'repair' : 'verify'} <name>`,
    describe: repair
      ? 'Rewrite invalid or stale metadata slots (and a lagging database) from the newest valid source'
      : 'Check the database file (PRAGMA quick_check), the five metadata slots and the database table; exit 0 only when all agree',
    builder: (y) =>
      y
        .positional('name', { type: 'string', demandOption: true })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
    handler: async (argv) => {
      await withStore(argv, false, async (store) => {
        // The database itself first: damaged pages anywhere (an index, the events) fail verify and repair.
        const integrity = store.quickCheck();
        if (integrity !== 'ok') throw new RemapfsError(repair ? 'repair' : 'verify', store.path, `the database is damaged: ${integrity}`, REBUILD_HINT);
        const pair = requirePair(store, argv.name);
        const report = await opsFor(store, pair).verify({ repair });
        if (argv.json) printJson(report);
        else process.stdout.write(formatVerifyReport(report));
        if (!repair && !report.consistent) process.exitCode = 1;
        if (repair && report.repaired.some((r) => r.includes('could not'))) process.exitCode = 1;
      });
    },
  };
}

export const verifyCommand = checkCommand(false);
export const repairCommand = checkCommand(true);
