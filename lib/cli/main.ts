/**
 * CLI entry: yargs with one module per command. Errors a user can cause are
 * printed as one line ("remapfs: ...") with a non-zero exit status: 2 for a
 * usage mistake, 1 for anything else. REMAPFS_DEBUG=1 adds stack traces.
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { UsageError } from '../errors.js';
import { checkOptions, type DeclaredOptions } from './options.js';
import { EXIT_USAGE, reportError } from './report.js';
import { HEALTH_BITS, healthCommand } from './commands/health.js';
import { configCommand } from './commands/config.js';
import { scanCommand } from './commands/scan.js';
import { mapCommand } from './commands/map.js';
import { discoverCommand } from './commands/discover.js';
import { evacuateCommand } from './commands/evacuate.js';
import { importBadCommand } from './commands/import-bad.js';
import { exportCommand } from './commands/export.js';
import { initCommand } from './commands/init.js';
import { mountCommand } from './commands/mount.js';
import { unmountCommand } from './commands/unmount.js';
import { listCommand } from './commands/list.js';
import { statusCommand } from './commands/status.js';
import { remapCommand } from './commands/remap.js';
import { repairCommand, verifyCommand } from './commands/verify.js';
import { importCommand } from './commands/import.js';
import { simulateCommand } from './commands/simulate.js';
import { faultCommand } from './commands/fault.js';
import { recoverCommand } from './commands/recover.js';
import { attachCommand, detachCommand } from './commands/attach.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The version in package.json (this file runs from dist/lib/cli/). */
export function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(HERE_DIR, '../../../package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(args: string[]): Promise<void> {
  // A reader that goes away (remapfs status | head) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  let command: unknown = args[0];
  try {
    await yargs(args)
      .scriptName('remapfs')
      .usage('$0 <command> [options]\n\nServes failing disks with their bad blocks remapped to a spare device.')
      .option('db', {
        type: 'string',
        describe: 'SQLite database (env REMAPFS_DB; default /var/lib/remapfs/remapfs.db)',
        global: true,
      })
      .command(initCommand)
      .command(mountCommand)
      .command(unmountCommand)
      .command(listCommand)
      .command(statusCommand)
      .command(remapCommand)
      .command(verifyCommand)
      .command(repairCommand)
      .command(importCommand)
      .command(simulateCommand)
      .command(faultCommand)
      .command(recoverCommand)
      .command(attachCommand)
      .command(detachCommand)
      .command(scanCommand)
      .command(healthCommand)
      .command(configCommand)
      .command(mapCommand)
      .command(discoverCommand)
      .command(evacuateCommand)
      .command(importBadCommand)
      .command(exportCommand)
      .completion('completion', 'Print a bash completion script (source it, or put it in /etc/bash_completion.d/remapfs)')
      // yargs passes its instance as the second argument; its typings omit it.
      .middleware(((argv: { _: unknown[] } & Record<string, unknown>, y: { getOptions(): unknown }) => {
        command = argv._[0];
        checkOptions(argv, y.getOptions() as DeclaredOptions);
      }) as never, true)
      .demandCommand(1, 'name a command')
      .strict()
      .help()
      .alias('h', 'help')
      .version(packageVersion())
      .wrap(Math.min(100, process.stdout.columns || 100))
      .fail((msg, err) => {
        // yargs reports its own findings (and errors thrown by a coerce) as YError: usage errors.
        if (err && err.name !== 'YError') throw err;
        throw new UsageError(err?.message ?? msg);
      })
      .parseAsync();
  } catch (err) {
    const status = reportError(err);
    // health's exit status is a bitmask whose bit 0 means a usage error (docs/cli.md).
    process.exitCode = command === 'health' && status === EXIT_USAGE ? HEALTH_BITS.usage : status;
  }
}
