/**
 * Option checks that apply to every command, run by main.ts as yargs
 * middleware before the handler (and before yargs' own validation):
 * - an option that takes one value may be given once (yargs would otherwise
 *   pass an array: `--db a --db b`);
 * - an option yargs does not know is named as the user typed it.
 * Numbers: options declared with countOption() are parsed by yargs itself
 * (coerce), so a malformed value is a usage error that names the option.
 * Everything here is pure; errors are UsageError (exit 2).
 */
import type { Options } from 'yargs';
import { UsageError } from '../errors.js';
import { parseCount } from './common.js';

/** The parts of yargs' getOptions() these checks read. */
export interface DeclaredOptions {
  key: Record<string, unknown>;
  array: string[];
  alias: Record<string, string[]>;
}

/** `-q` or `--db`, as it is typed. */
export function flagName(key: string): string {
  return key.length === 1 ? `-${key}` : `--${key}`;
}

function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
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
    const name = [k, ...(declared.alias[k] ?? [])].sort((a, b) => b.length - a.length)[0] ?? k;
    throw new UsageError(`${flagName(name)} was given more than once; it takes one value`);
  }
}

/**
 * A non-negative integer option. yargs parses it with parseCount, so the
 * handler receives a number, and "abc", "1.5" or "-3" is a usage error naming it.
 */
export function countOption(name: string, describe: string, defaultValue?: number): Options {
  return {
    type: 'string',
    describe,
    coerce: (raw: unknown) => {
      if (Array.isArray(raw)) throw new UsageError(`${flagName(name)} was given more than once; it takes one value`);
      return parseCount(flagName(name), raw);
    },
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
  };
}
