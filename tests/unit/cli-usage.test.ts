/**
 * Usage errors that need no FUSE, no loop device and no database: a repeated
 * single-value option, an unknown option and a malformed number each give
 * exit 2 and one line that names the option. Also --version and completion.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkOptions, type DeclaredOptions } from '../../lib/cli/options.js';
import { UsageError } from '../../lib/errors.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const BIN = path.resolve(HERE_DIR, '../../../bin/remapfs');
const PACKAGE_JSON = path.resolve(HERE_DIR, '../../../package.json');

describe('remapfs usage errors', () => {
  let dir: string;
  let db: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-usage-'));
    db = path.join(dir, 'remapfs.db');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, REMAPFS_DB: db }, encoding: 'utf8', timeout: 60000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it.each<[string, string[], RegExp, number]>([
    ['--db twice', ['--db', 'a.db', '--db', 'b.db', 'list'], /^remapfs: --db was given more than once/, 2],
    ['--db twice, after the command', ['list', '--db', 'a.db', '--db', 'b.db'], /^remapfs: --db was given more than once/, 2],
    ['--main twice', ['init', 'x', '--main', 'a', '--main', 'b', '--spare', 'c'], /^remapfs: --main was given more than once/, 2],
    ['--open-mode twice', ['mount', 'mnt', '--open-mode', 'auto', '--open-mode', 'direct'], /^remapfs: --open-mode was given more than once/, 2],
    ['a numeric option twice', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size', '4096', '--block-size', '512'], /^remapfs: --block-size was given more than once/, 2],
    ['an unknown option after the command', ['list', '--frob'], /^remapfs: unknown option --frob /, 2],
    ['an unknown option before the command', ['--frob', 'list'], /^remapfs: unknown option --frob /, 2],
    ['an unknown short option', ['status', 'p', '-x'], /^remapfs: unknown option -x /, 2],
    ['an unknown dashed option', ['list', '--no-such-thing=1'], /^remapfs: unknown option --no-such-thing /, 2],
    ['--block-size abc', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size', 'abc'], /^remapfs: --block-size must be a non-negative integer, got "abc"/, 2],
    ['--block-size 1.5', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size', '1.5'], /^remapfs: --block-size must be a non-negative integer, got "1.5"/, 2],
    ['--block-size 0x1000', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size', '0x1000'], /^remapfs: --block-size must be a non-negative integer/, 2],
    ['--columns x', ['map', 'p', '--columns', 'x'], /^remapfs: --columns must be a non-negative integer/, 2],
    ['--retries -1', ['evacuate', 'p', '--to', 't', '--retries=-1'], /^remapfs: --retries must be a non-negative integer/, 2],
    ['--delay-ms 1e3', ['simulate', 'img', 'mnt', '--delay-ms', '1e3'], /^remapfs: --delay-ms must be a non-negative integer/, 2],
    ['import-bad --block-size x', ['import-bad', 'p', '--badblocks', 'f', '--block-size', 'x'], /^remapfs: --block-size must be a non-negative integer/, 2],
    // health's status is a bitmask: a usage error is bit 0 (docs/cli.md).
    ['health --days abc', ['health', '--days', 'abc'], /^remapfs: --days must be a non-negative integer/, 1],
    ['health with --db twice', ['--db', 'a', '--db', 'b', 'health'], /^remapfs: --db was given more than once/, 1],
  ])('%s: %j is a usage error naming the option', (_name, args, line, status) => {
    const r = cli(args);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(line)]);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(status);
    expect(fs.existsSync(db)).toBe(false);
  });

  it('repeatable options and repeated flags are still accepted', () => {
    // --dir is repeatable; --json given twice is the same flag.
    const r = cli(['discover', '--no-block-devices', '--dir', dir, '--dir', dir, '--json', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: 1, pairs: [] });
  });

  it('--version prints the version in package.json', () => {
    const r = cli(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe((JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version);
  });

  it('completion prints a bash script, and completes commands and options', () => {
    const script = cli(['completion']);
    expect(script.status).toBe(0);
    expect(script.stdout).toMatch(/^complete -o bashdefault -o default -F _remapfs_yargs_completions remapfs$/m);
    const commands = cli(['--get-yargs-completions', 'remapfs', '']).stdout.split('\n');
    expect(commands).toEqual(expect.arrayContaining(['attach', 'detach', 'mount', 'init', 'completion']));
    const options = cli(['--get-yargs-completions', 'remapfs', 'mount', 'x', '--']).stdout.split('\n');
    expect(options).toEqual(expect.arrayContaining(['--attach', '--watch', '--open-mode']));
  });
});

describe('checkOptions', () => {
  const declared: DeclaredOptions = { key: { db: true, watch: true, quiet: true, q: true, 'block-size': true }, array: ['watch'], alias: { quiet: ['q'] } };

  it('accepts single values, arrays of array options, aliases and camelCase twins', () => {
    expect(() => checkOptions({ _: ['x'], $0: 'remapfs', db: 'a', watch: ['a', 'b'], q: true, quiet: true, 'block-size': 4096, blockSize: 4096 }, declared)).not.toThrow();
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a repeated option', { db: ['a', 'b'] }, '--db was given more than once; it takes one value'],
    ['an unknown long option', { 'frob-nicate': 1, frobNicate: 1 }, 'unknown option --frob-nicate'],
    ['an unknown short option', { x: true }, 'unknown option -x'],
  ])('refuses %s', (_name, argv, message) => {
    expect(() => checkOptions({ _: [], $0: 'remapfs', ...argv }, declared)).toThrow(new UsageError(message));
  });
});
