/**
 * Option and argument checks that apply to every command. main.ts runs
 * checkArguments() as yargs middleware, before the handler and before yargs'
 * own validation, and turns what yargs reports itself into one line with
 * usageErrorOf(). Every problem is a UsageError (exit 2) whose message names
 * the option or argument:
 * - an option that takes a value needs one (yargs requiresArg, set for every
 *   such option by requireValues()), and the value may not be empty;
 * - an option that takes one value may be given once (yargs would otherwise
 *   pass an array: `--db a --db b`);
 * - an option yargs does not know is named as the user typed it;
 * - a flag takes no value other than true or false (`--json=yes`);
 * - a value outside an option's or argument's choices is one line that names
 *   the choices;
 * - `--` ends the options: what follows are arguments (protectDoubleDash()).
 * Numbers: options declared with countOption() are parsed by yargs itself
 * (coerce), so a malformed value is a usage error that names the option.
 * Everything here is pure.
 */
import type { Argv, CommandModule, Options } from 'yargs';
import { UsageError } from '../errors.js';
import { parseCount } from './common.js';

/** The parts of yargs' getOptions() these checks read. */
export interface DeclaredOptions {
  key: Record<string, unknown>;
  array: string[];
  alias: Record<string, string[]>;
  string?: string[];
  boolean?: string[];
  choices?: Record<string, unknown[]>;
}

/** A command's positional argument, from its command string (`config <name> [settings..]`). */
export interface Positional {
  name: string;
  required: boolean;
  variadic: boolean;
}

/** `-q` or `--db`, as it is typed. */
export function flagName(key: string): string {
  return key.length === 1 ? `-${key}` : `--${key}`;
}

function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The positional arguments in a yargs command string. */
export function positionalsOf(command: string): Positional[] {
  return [...command.matchAll(/([<[])([^>\]\s]+?)(\.\.)?[>\]]/g)].map((m) => ({ name: m[2] as string, required: m[1] === '<', variadic: m[3] !== undefined }));
}

/** `<name>` or `[settings..]`, as the usage line shows it. */
function positionalName(p: Positional): string {
  const dots = p.variadic ? '..' : '';
  return p.required ? `<${p.name}${dots}>` : `[${p.name}${dots}]`;
}

/** How a problem names an option or positional argument. */
function argName(key: string, positionals: readonly Positional[]): string {
  const p = positionals.find((x) => x.name === key || camelCase(x.name) === key);
  return p ? positionalName(p) : flagName(key);
}

/** The long name of an option (the user may have typed an alias). */
function longName(key: string, declared: DeclaredOptions): string {
  return [key, ...(declared.alias[key] ?? [])].sort((a, b) => b.length - a.length)[0] ?? key;
}

/** Throws a UsageError for the first unknown option, or single-value option given more than once. */
export function checkOptions(argv: Record<string, unknown>, declared: DeclaredOptions): void {
  const known = new Set<string>(['_', '$0']);
  for (const k of Object.keys(declared.key)) {
    known.add(k);
    known.add(camelCase(k));
    for (const a of declared.alias[k] ?? []) {
      known.add(a);
      known.add(camelCase(a));
    }
  }
  const unknown = Object.keys(argv).filter((k) => !known.has(k));
  // yargs adds a camelCase twin of each dashed key: name the dashed one.
  const typed = unknown.filter((k) => !unknown.some((other) => other !== k && camelCase(other) === k));
  const first = typed[0];
  if (first !== undefined) throw new UsageError(`unknown option ${flagName(first)}`);

  const arrays = new Set(declared.array);
  for (const k of Object.keys(declared.key)) {
    if (arrays.has(k) || !Array.isArray(argv[k])) continue;
    // Report the long name when the user typed an alias.
    throw new UsageError(`${flagName(longName(k, declared))} was given more than once; it takes one value`);
  }
}

/**
 * Values: no option or argument that takes a string may be empty (`--db ''`,
 * `--db=`), and a value must be one of the choices declared for it.
 */
export function checkValues(argv: Record<string, unknown>, declared: DeclaredOptions, positionals: readonly Positional[] = []): void {
  for (const k of declared.string ?? []) {
    const v = argv[k];
    if (v === '' || (Array.isArray(v) && v.includes(''))) {
      const p = positionals.some((x) => x.name === k);
      throw new UsageError(p ? `${argName(k, positionals)} may not be empty` : `${flagName(longName(k, declared))} needs a value, not an empty string`);
    }
  }
  for (const [k, choices] of Object.entries(declared.choices ?? {})) {
    const v = argv[k];
    if (v === undefined) continue;
    const bad: unknown = (Array.isArray(v) ? (v as unknown[]) : [v]).find((x) => !choices.includes(x));
    if (bad !== undefined) throw new UsageError(`${argName(k, positionals)} must be one of ${choices.map(String).join(', ')}, got "${typeof bad === 'string' ? bad : JSON.stringify(bad)}"`);
  }
}

/**
 * A flag given a value (`--json=yes`, `-q=1`): yargs would read anything but
 * "true" as false. Only true and false are taken. `args` are the raw
 * arguments before any `--`.
 */
export function checkFlagValues(args: readonly string[], declared: DeclaredOptions): void {
  const flags = new Set<string>();
  for (const k of declared.boolean ?? []) {
    for (const n of [k, ...(declared.alias[k] ?? [])]) {
      flags.add(n);
      flags.add(camelCase(n));
    }
  }
  for (const a of args) {
    const m = /^--?([^=-][^=]*)=([\s\S]*)$/.exec(a);
    if (!m || (a[1] !== '-' && (m[1] as string).length !== 1)) continue;
    if (flags.has(m[1] as string) && m[2] !== 'true' && m[2] !== 'false') {
      throw new UsageError(`${flagName(m[1] as string)} is a flag and takes no value, got "${a}"`);
    }
  }
}

/**
 * Makes every option of a command that takes a value require one (yargs
 * requiresArg): `--db` at the end, or followed by another option, is a usage
 * error instead of silently meaning the default.
 */
export function requireValues<T>(cmd: CommandModule<object, T>): CommandModule<object, T> {
  const positionals = new Set(positionalsOf(typeof cmd.command === 'string' ? cmd.command : '').map((p) => p.name));
  const builder = cmd.builder;
  return {
    ...cmd,
    builder: (y: Argv<object>) => {
      // remapfs' builders are synchronous: they return the instance.
      const built = (typeof builder === 'function' ? builder(y) : builder ? y.options(builder) : y) as Argv<object>;
      const o = (built as unknown as { getOptions(): DeclaredOptions & { number: string[] } }).getOptions();
      const bools = new Set(o.boolean ?? []);
      const valued = [...new Set([...(o.string ?? []), ...o.number, ...o.array])].filter((k) => !positionals.has(k) && !bools.has(k));
      return (valued.length ? built.requiresArg(valued) : built) as Argv<T>;
    },
  };
}

/** The arguments after `--` are replaced by these (no argument can hold a NUL), so yargs takes them as positional. */
const PROTECTED = '\u0000remapfs-argument-';

/**
 * yargs does not pass arguments after `--` to a command's positionals
 * (`remapfs status -- p` would miss <name>). Returns the arguments with
 * everything after the first `--` replaced by placeholders that yargs takes
 * as positional, the arguments before it (where options are), and a function
 * that gives the real values back; tail is what came after `--`.
 */
export function protectDoubleDash(args: readonly string[]): { args: string[]; options: string[]; tail: string[]; restore: <V>(v: V) => V } {
  const at = args.indexOf('--');
  if (at < 0 || args.includes('--get-yargs-completions')) return { args: [...args], options: [...args], tail: [], restore: (v) => v };
  const tail = args.slice(at + 1);
  const restoreOne = (v: unknown): unknown => {
    if (typeof v === 'string') return v.startsWith(PROTECTED) ? (tail[Number(v.slice(PROTECTED.length))] ?? v) : v.replaceAll(new RegExp(`${PROTECTED}(\\d+)`, 'g'), (_, i: string) => tail[Number(i)] ?? '');
    if (Array.isArray(v)) return v.map(restoreOne);
    return v;
  };
  return {
    args: [...args.slice(0, at), ...tail.map((_, i) => `${PROTECTED}${i}`)],
    options: args.slice(0, at),
    tail,
    restore: <V>(v: V) => restoreOne(v) as V,
  };
}

/** Puts the real arguments back into argv (in place): see protectDoubleDash. */
export function restoreArguments(argv: Record<string, unknown>, restore: <V>(v: V) => V): void {
  for (const [k, v] of Object.entries(argv)) argv[k] = restore(v);
}

/** What usageErrorOf needs to know besides yargs' message. */
export interface FailureContext {
  /** The arguments yargs parsed so far, and its parse error (a missing value, a coerce that threw). */
  parsed?: { argv: Record<string, unknown>; error: Error | null } | undefined;
  declared?: DeclaredOptions | undefined;
  /** The command being run, if yargs got that far. */
  command?: string | undefined;
  /** The commands' positional arguments, by command name. */
  commands: ReadonlyMap<string, readonly Positional[]>;
  /** The raw arguments before `--`. */
  options: readonly string[];
  /** The raw arguments after `--`. */
  afterDoubleDash?: readonly string[];
  /** Gives back the arguments after `--` (protectDoubleDash). */
  restore: <V>(v: V) => V;
}

function joinAnd(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/**
 * One line for what yargs found wrong. A missing value comes first, then an
 * unknown option (yargs would first complain about the arguments it now
 * lacks: `status -p`), then yargs' own finding, said in remapfs' words.
 */
export function usageErrorOf(message: string, ctx: FailureContext): UsageError {
  const parseError = ctx.parsed?.error;
  if (parseError instanceof UsageError) return parseError;
  const missing = /^Not enough arguments following: (.+)$/.exec(parseError?.message ?? message);
  if (missing) return needsValue(missing[1] as string, ctx);
  if (parseError) return new UsageError(oneLine(parseError.message));
  if (ctx.parsed && ctx.declared) {
    try {
      checkOptions(ctx.parsed.argv, ctx.declared);
    } catch (err) {
      if (err instanceof UsageError) return err;
      throw err;
    }
  }
  const command = ctx.command ?? '';
  const positionals = ctx.commands.get(command);
  let m = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(message);
  if (m && positionals) {
    const lacking = positionals.filter((p) => p.required).slice(Number(m[1])).map(positionalName);
    return new UsageError(`${command} needs ${joinAnd(lacking)}`);
  }
  m = /^Missing required arguments?: (.+)$/.exec(message);
  if (m) {
    const names = (m[1] as string).split(', ').map((k) => argName(k, positionals ?? []));
    const late = ctx.afterDoubleDash?.find((a) => names.includes(a.replace(/=.*$/, '')));
    const why = late !== undefined ? ` (${late} comes after "--", so it is an argument, not an option)` : '';
    return new UsageError(`${joinAnd(names)} ${names.length > 1 ? 'are' : 'is'} required${why}`);
  }
  m = /^Unknown arguments?: (.+)$/.exec(message);
  if (m) {
    const names = (m[1] as string).split(', ');
    const first = ctx.parsed?.argv._;
    if (!positionals && names[0] !== undefined && ctx.commands.has(names[0])) return new UsageError(`the command ${names[0]} must come before "--"`);
    if (!positionals && Array.isArray(first) && names[0] === ctx.restore(String(first[0]))) return new UsageError(`unknown command "${names[0]}"`);
    const what = `unexpected argument${names.length > 1 ? 's' : ''} ${names.map((n) => `"${n}"`).join(', ')}`;
    if (!positionals) return new UsageError(what);
    if (positionals.length === 0) return new UsageError(`${what}: ${command} takes none`);
    return new UsageError(`${what}; usage: remapfs ${command}${positionals.map((p) => ` ${positionalName(p)}`).join('')}`);
  }
  return new UsageError(oneLine(message));
}

/** `--name needs a value`, and what to write when the value starts with a dash. */
function needsValue(key: string, ctx: FailureContext): UsageError {
  const flag = flagName(ctx.declared ? longName(key, ctx.declared) : key);
  const i = ctx.options.findIndex((a) => a === `--${key}` || a === `-${key}` || (ctx.declared?.alias[key] ?? []).some((al) => a === flagName(al)));
  const next = i >= 0 ? ctx.options[i + 1] : undefined;
  const nextKey = next?.replace(/^--?/, '').replace(/=.*$/, '');
  const nextKnown = nextKey !== undefined && ctx.declared !== undefined && (nextKey in ctx.declared.key || Object.values(ctx.declared.alias).some((a) => a.includes(nextKey)) || nextKey.startsWith('no-'));
  if (next !== undefined && next.startsWith('-') && !nextKnown) {
    return new UsageError(`${flag} needs a value (for a value that starts with "-", write ${ctx.options[i]}=${next})`);
  }
  return new UsageError(`${flag} needs a value`);
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * A non-negative integer option. yargs parses it with parseCount, so the
 * handler receives a number, and "abc", "1.5" or "-3" is a usage error naming
 * it; `check` may refuse more (it returns what is wrong, or undefined).
 */
export function countOption(name: string, describe: string, defaultValue?: number, check?: (n: number) => string | undefined): Options {
  return {
    type: 'string',
    describe,
    requiresArg: true,
    coerce: (raw: unknown) => {
      if (Array.isArray(raw)) throw new UsageError(`${flagName(name)} was given more than once; it takes one value`);
      const n = parseCount(flagName(name), raw);
      const problem = check?.(n);
      if (problem !== undefined) throw new UsageError(`${flagName(name)} ${problem}, got ${n}`);
      return n;
    },
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
  };
}
