/**
 * CLI entry: yargs with one module per command. Errors a user can cause are
 * printed as one line ("remapfs: ...") with a non-zero exit status: 2 for a
 * usage mistake, 1 for anything else. REMAPFS_DEBUG=1 adds stack traces.
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs, { type CommandModule } from 'yargs';
import {
  checkFlagValues,
  checkOptions,
  checkValues,
  type DeclaredOptions,
  type FailureContext,
  positionalsOf,
  protectDoubleDash,
  requireValues,
  restoreArguments,
  usageErrorOf,
} from './options.js';
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

/** Every command but completion, which main() adds (it needs the parser). */
const COMMANDS: ReadonlyArray<CommandModule<object, never>> = [
  initCommand,
  mountCommand,
  unmountCommand,
  listCommand,
  statusCommand,
  remapCommand,
  verifyCommand,
  repairCommand,
  importCommand,
  simulateCommand,
  faultCommand,
  recoverCommand,
  attachCommand,
  detachCommand,
  scanCommand,
  healthCommand,
  configCommand,
  mapCommand,
  discoverCommand,
  evacuateCommand,
  importBadCommand,
  exportCommand,
] as unknown as ReadonlyArray<CommandModule<object, never>>;

/** yargs' parser state, which its typings leave out. */
interface ParserState {
  parsed?: { argv: Record<string, unknown>; error: Error | null } | false;
  getOptions(): DeclaredOptions;
  getInternalMethods(): { getContext(): { commands: string[] } };
}

export async function main(args: string[]): Promise<void> {
  // A reader that goes away (remapfs status | head) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  let command: unknown = args[0];
  // Arguments after `--` are positional whatever they look like (options.ts).
  const dd = protectDoubleDash(args);
  const parser = yargs(dd.args);
  // A command of its own (yargs' .completion() would take any arguments after it); yargs answers
  // --get-yargs-completions, which the script runs, without .completion().
  const completionCommand: CommandModule<object, object> = {
    command: 'completion',
    describe: 'Print a bash completion script (source it, or put it in /etc/bash_completion.d/remapfs)',
    handler: () => void parser.showCompletionScript(),
  };
  const commands = [...COMMANDS, completionCommand as CommandModule<object, never>];
  const positionals = new Map(commands.map((c) => [String(c.command).split(' ')[0] as string, positionalsOf(String(c.command))]));
  const failure = (y: ParserState): FailureContext => ({
    parsed: y.parsed || undefined,
    // The command yargs is running (argv._ may have lost it by then).
    command: y.getInternalMethods().getContext().commands[0],
    declared: y.getOptions(),
    commands: positionals,
    options: dd.options,
    afterDoubleDash: dd.tail,
    restore: dd.restore,
  });
  try {
    parser
      .scriptName('remapfs')
      // Messages are matched and reworded (options.ts): the same in every locale.
      .locale('en')
      .usage('$0 <command> [options]\n\nServes failing disks with their bad blocks remapped to a spare device.')
      .option('db', {
        type: 'string',
        requiresArg: true,
        describe: 'SQLite database (env REMAPFS_DB; default /var/lib/remapfs/remapfs.db)',
        global: true,
      });
    // Every option that takes a value needs one (options.ts).
    for (const c of commands) parser.command(requireValues(c));
    await parser
      // yargs passes its instance as the second argument; its typings omit it.
      .middleware(((argv: { _: unknown[] } & Record<string, unknown>, y: ParserState) => {
        command = argv._[0];
        // Only a command's arguments: without a command, yargs is yet to call an argument after `--` unknown.
        if (typeof command === 'string' && positionals.has(command)) restoreArguments(argv, dd.restore);
        const state = failure(y);
        if (state.parsed?.error) throw usageErrorOf(state.parsed.error.message, state);
        const declared = y.getOptions();
        checkFlagValues(dd.options, declared);
        checkOptions(argv, declared);
        checkValues(argv, declared, positionals.get(String(command)) ?? []);
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
        const state = failure(parser as unknown as ParserState);
        command = state.command ?? command;
        throw usageErrorOf(dd.restore(err?.message ?? msg), state);
      })
      .parseAsync();
  } catch (err) {
    const status = reportError(err);
    // health's exit status is a bitmask whose bit 0 means a usage error (docs/cli.md).
    process.exitCode = command === 'health' && status === EXIT_USAGE ? HEALTH_BITS.usage : status;
  }
}
