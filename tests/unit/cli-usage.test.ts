/**
 * Usage errors that need no FUSE, no loop device and no database: a repeated
 * single-value option, an unknown option and a malformed number each give
 * exit 2 and one line that names the option. Also --version and completion.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { dbPath } from '../../lib/cli/common.js';
import { checkFlagValues, checkOptions, checkValues, type DeclaredOptions, positionalsOf, protectDoubleDash, usageErrorOf } from '../../lib/cli/options.js';
import { parseConfigValue } from '../../lib/health/config.js';
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

  function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, REMAPFS_DB: db, ...env }, cwd: dir, encoding: 'utf8', timeout: 60000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** One line on stderr that matches, no stack trace, nothing on stdout, the status, and no database made. */
  function expectUsageError(r: ReturnType<typeof cli>, line: RegExp, status: number): void {
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(line)]);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at |Invalid values|non-option arguments/);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(status);
  }

  // Each was silently ignored, or ran with a default, or said something else, before.
  it.each<[string, string[], RegExp, number]>([
    ['--db without a value', ['list', '--db'], /^remapfs: --db needs a value \(see remapfs --help\)$/, 2],
    ['--db= (empty)', ['list', '--db='], /^remapfs: --db needs a value, not an empty string /, 2],
    ['--db ""', ['list', '--db', ''], /^remapfs: --db needs a value, not an empty string /, 2],
    ['--db "" before the command', ['--db', '', 'list'], /^remapfs: --db needs a value, not an empty string /, 2],
    ['--db alone', ['--db'], /^remapfs: --db needs a value /, 2],
    ['map --columns without a value', ['map', 'p', '--columns'], /^remapfs: --columns needs a value /, 2],
    ['map --svg without a value', ['map', 'p', '--svg'], /^remapfs: --svg needs a value /, 2],
    ['map --svg ""', ['map', 'p', '--svg', ''], /^remapfs: --svg needs a value, not an empty string /, 2],
    ['init --block-size without a value', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size'], /^remapfs: --block-size needs a value /, 2],
    ['init --main followed by --spare', ['init', 'q', '--main', '--spare', 's'], /^remapfs: --main needs a value \(see remapfs --help\)$/, 2],
    ['init --main ""', ['init', 'q', '--main', '', '--spare', 's'], /^remapfs: --main needs a value, not an empty string /, 2],
    ['discover --dir without a value', ['discover', '--dir'], /^remapfs: --dir needs a value /, 2],
    ['discover --dir ""', ['discover', '--no-block-devices', '--dir', ''], /^remapfs: --dir needs a value, not an empty string /, 2],
    ['mount --watch without a value', ['mount', 'mnt', '--watch'], /^remapfs: --watch needs a value /, 2],
    ['mount --open-mode ""', ['mount', 'mnt', '--open-mode', ''], /^remapfs: --open-mode needs a value, not an empty string /, 2],
    ['import --name followed by an unknown option', ['import', '--name', '-x'], /^remapfs: --name needs a value \(for a value that starts with "-", write --name=-x\) /, 2],
    ['an empty positional argument', ['status', ''], /^remapfs: <name> may not be empty /, 2],
    ['import-bad --block-size 3', ['import-bad', 'p', '--badblocks', 'f', '--block-size', '3'], /^remapfs: --block-size must be a positive multiple of 512, got 3 /, 2],
    ['import-bad --block-size 0', ['import-bad', 'p', '--badblocks', 'f', '--block-size', '0'], /^remapfs: --block-size must be a positive multiple of 512, got 0 /, 2],
    ['a positional outside its choices', ['fault', 'd', 'frob'], /^remapfs: <action> must be one of add, remove, list, clear, got "frob" /, 2],
    ['an option outside its choices', ['mount', 'd', '--engine', 'bogus'], /^remapfs: --engine must be one of native, fuse-native, got "bogus" /, 2],
    ['--open-mode outside its choices', ['mount', 'd', '--open-mode=fast'], /^remapfs: --open-mode must be one of auto, direct, dsync, buffered, got "fast" /, 2],
    ['completion with an argument', ['completion', 'foo'], /^remapfs: unexpected argument "foo": completion takes none /, 2],
    ['an extra argument', ['status', 'p', 'extra'], /^remapfs: unexpected argument "extra"; usage: remapfs status <name> /, 2],
    ['an unknown command', ['frob'], /^remapfs: unknown command "frob" /, 2],
    ['a sector with a space', ['remap', 'p', ' 8'], /^remapfs: sector must be a non-negative integer, got " 8" /, 2],
    ['a sector in hex', ['remap', 'p', '0x8'], /^remapfs: sector must be a non-negative integer, got "0x8" /, 2],
    ['--block-size with a space', ['init', 'x', '--main', 'a', '--spare', 'b', '--block-size', ' 4096'], /^remapfs: --block-size must be a non-negative integer, got " 4096" /, 2],
    ['a setting in hex', ['config', 'p', 'scanRateMiBps=0x10'], /^remapfs: scanRateMiBps must be a number from 0.01 to 100000 in plain decimal, got "0x10" /, 2],
    ['a setting in binary', ['config', 'p', 'scanIdleMs=0b101'], /^remapfs: scanIdleMs must be a number from 0 to 600000 in plain decimal, got "0b101" /, 2],
    ['a setting with spaces', ['config', 'p', 'scanIdleMs= 5'], /^remapfs: scanIdleMs must be a number .* got " 5" /, 2],
    ['a flag given a value', ['status', 'p', '--json=yes'], /^remapfs: --json is a flag and takes no value, got "--json=yes" /, 2],
    ['a short flag given a value', ['health', '-q=1'], /^remapfs: -q is a flag and takes no value, got "-q=1" /, 1],
    ['an unknown option in place of a positional', ['status', '-p'], /^remapfs: unknown option -p /, 2],
    ['a missing positional', ['mount'], /^remapfs: mount needs <mountpoint> /, 2],
    ['a missing variadic positional', ['remap', 'p'], /^remapfs: remap needs <sectors\.\.> /, 2],
    ['missing options, after --', ['init', '--', '-q'], /^remapfs: --main and --spare are required /, 2],
    ['options after --', ['init', '--', '-q', '--main', 'a', '--spare', 'b'], /^remapfs: --main and --spare are required \(--main comes after "--", so it is an argument, not an option\) /, 2],
    ['a name after -- that is not a name', ['init', '--main', 'a', '--spare', 'b', '--', '-q'], /^remapfs: invalid pair name "-q"/, 2],
    ['the command after --', ['--', 'list'], /^remapfs: the command list must come before "--" /, 2],
    ['an extra argument after --', ['list', '--', '-x'], /^remapfs: unexpected argument "-x": list takes none /, 2],
    // health's status is a bitmask: a usage error is bit 0 (docs/cli.md).
    ['health --prometheus ""', ['health', 'p', '--prometheus', ''], /^remapfs: --prometheus needs a value, not an empty string /, 1],
    ['health --prometheus without a value', ['health', 'p', '--prometheus'], /^remapfs: --prometheus needs a value /, 1],
    ['health ""', ['health', ''], /^remapfs: \[name\] may not be empty /, 1],
  ])('%s: %j is a usage error that says so in one line', (_name, args, line, status) => {
    expectUsageError(cli(args), line, status);
    expect(fs.existsSync(db)).toBe(false);
  });

  it('says the same whatever the locale', () => {
    expectUsageError(cli(['fault', 'd', 'frob'], { LANG: 'de_DE.UTF-8', LC_ALL: 'fr_FR.UTF-8' }), /^remapfs: <action> must be one of add, remove, list, clear, got "frob" /, 2);
    expectUsageError(cli(['list', 'foo'], { LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' }), /^remapfs: unexpected argument "foo": list takes none /, 2);
  });

  describe('with a pair', () => {
    beforeEach(() => {
      fs.writeFileSync(path.join(dir, 'main.img'), '');
      fs.writeFileSync(path.join(dir, 'spare.img'), '');
      fs.truncateSync(path.join(dir, 'main.img'), 8 << 20);
      fs.truncateSync(path.join(dir, 'spare.img'), 8 << 20);
      const r = cli(['init', 'p', '--main', 'main.img', '--spare', 'spare.img']);
      expect(r.status).toBe(0);
    });

    /** What a refused command must not change: the pair's table and settings. */
    function state(): unknown {
      const status = cli(['status', 'p', '--json', '--entries']);
      const config = cli(['config', 'p', '--json']);
      expect([status.status, config.status]).toEqual([0, 0]);
      return { status: JSON.parse(status.stdout) as unknown, config: JSON.parse(config.stdout) as unknown };
    }

    it('REMAPFS_DB set but empty is a usage error, never the default database; --db still names one', () => {
      const before = state();
      const defaultDb = fs.existsSync('/var/lib/remapfs/remapfs.db');
      const empty = { REMAPFS_DB: '' };
      const line = /^remapfs: REMAPFS_DB is set but empty; set it to the database file, or unset it for the default \(see remapfs --help\)$/;
      for (const args of [['list'], ['status', 'p'], ['remap', 'p', '8'], ['verify', 'p'], ['config', 'p', 'scanEnabled=false']]) {
        expectUsageError(cli(args, empty), line, 2);
      }
      // health's exit status is a bitmask: a usage error is bit 0.
      expectUsageError(cli(['health'], empty), line, 1);
      expect(fs.existsSync('/var/lib/remapfs/remapfs.db')).toBe(defaultDb);
      expect(state()).toEqual(before);
      expect(cli(['--db', db, 'status', 'p'], empty).status).toBe(0);
    });

    it('dbPath: --db, else REMAPFS_DB, else the default; an empty one is a usage error', () => {
      const saved = process.env.REMAPFS_DB;
      try {
        process.env.REMAPFS_DB = '/x/env.db';
        expect(dbPath({ db: '/x/arg.db' })).toBe('/x/arg.db');
        expect(dbPath({})).toBe('/x/env.db');
        expect(() => dbPath({ db: '' })).toThrow(UsageError);
        process.env.REMAPFS_DB = '';
        expect(() => dbPath({})).toThrow(/^REMAPFS_DB is set but empty/);
        expect(dbPath({ db: '/x/arg.db' })).toBe('/x/arg.db');
        delete process.env.REMAPFS_DB;
        expect(dbPath({})).toBe('/var/lib/remapfs/remapfs.db');
      } finally {
        if (saved === undefined) delete process.env.REMAPFS_DB;
        else process.env.REMAPFS_DB = saved;
      }
    });

    it('refuses bad values and changes nothing', () => {
      const before = state();
      fs.writeFileSync(path.join(dir, 'bad.txt'), '3\n');
      for (const [args, line, status] of [
        [['remap', 'p', ' 8'], /^remapfs: sector must be a non-negative integer, got " 8" /, 2],
        [['remap', 'p', '8', '0b1'], /^remapfs: sector must be a non-negative integer, got "0b1" /, 2],
        [['config', 'p', 'scanRateMiBps=0x10'], /scanRateMiBps must be a number .* in plain decimal, got "0x10" /, 2],
        [['config', 'p', 'latencyWarnMs=1e1'], /latencyWarnMs must be a number .* in plain decimal, got "1e1" /, 2],
        [['config', 'p', 'readRetries=3', 'scanIdleMs=0b101'], /scanIdleMs must be a number .* in plain decimal, got "0b101" /, 2],
        [['import-bad', 'p', '--badblocks', 'bad.txt', '--block-size', '3'], /^remapfs: --block-size must be a positive multiple of 512, got 3 /, 2],
        [['import-bad', 'p', '--badblocks', 'bad.txt', '--block-size'], /^remapfs: --block-size needs a value /, 2],
        [['map', 'p', '--svg'], /^remapfs: --svg needs a value /, 2],
        [['map', 'p', '--columns'], /^remapfs: --columns needs a value /, 2],
        [['health', 'p', '--prometheus', ''], /^remapfs: --prometheus needs a value, not an empty string /, 1],
        [['status', 'p', '--json=yes'], /^remapfs: --json is a flag and takes no value/, 2],
        [['remap', 'p', '8', '--json=no'], /^remapfs: --json is a flag and takes no value/, 2],
      ] as Array<[string[], RegExp, number]>) {
        expectUsageError(cli(args), line, status);
      }
      expect(state()).toEqual(before);
      expect(fs.readdirSync(dir).sort()).toEqual(['bad.txt', 'main.img', 'remapfs.db', 'spare.img']);
    });

    it('takes plain decimal numbers, fractions where a setting has them, flags with true or false, and arguments after --', () => {
      const config = cli(['config', 'p', 'scanRateMiBps=2.5', 'scanIdleMs=250', '--json=true']);
      expect(config.status).toBe(0);
      expect(JSON.parse(config.stdout)).toMatchObject({ config: { scanRateMiBps: 2.5, scanIdleMs: 250 } });
      const remap = cli(['--db=' + db, 'remap', '--json', '--', 'p', '8']);
      expect(remap.stderr).toBe('');
      expect(JSON.parse(remap.stdout)).toMatchObject({ remaps: [{ sector: 8, mainBlock: 1 }] });
      const status = cli(['status', '--json=false', '--', 'p']);
      expect(status.status).toBe(0);
      expect(status.stdout).toMatch(/^pair +p$/m);
      const svg = cli(['map', 'p', '--svg', 'map.svg', '--columns', '8']);
      expect(svg.status).toBe(0);
      expect(fs.readFileSync(path.join(dir, 'map.svg'), 'utf8')).toMatch(/<svg[ >]/);
    });
  });

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
    ['status --entries without --json', ['status', 'p', '--entries'], /^remapfs: --entries adds the remap table to the JSON output: give --json with it \(see remapfs --help\)$/, 2],
    ['fault --delay-ms without --slow', ['fault', '/nonexistent', 'add', '7', '--delay-ms', '5'], /^remapfs: --delay-ms sets the delay of slow sectors: give --slow with it/, 2],
    ['fault where no simulator runs', ['fault', '/nonexistent-sim', 'list'], /^remapfs: fault \/nonexistent-sim: no remapfs simulator runs there \(it has no control socket\) \(name the mount point given to a running "remapfs simulate"\)$/, 1],
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

  it('completion prints a bash script and takes no argument', () => {
    const r = cli(['completion']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/remapfs --get-yargs-completions/);
    expectUsageError(cli(['completion', 'foo']), /^remapfs: unexpected argument "foo"/, 2);
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

describe('option and argument checks', () => {
  const declared: DeclaredOptions = {
    key: { db: true, json: true, quiet: true, engine: true, name: true, dir: true },
    array: ['dir'],
    alias: { quiet: ['q'] },
    string: ['db', 'engine', 'name', 'dir'],
    boolean: ['json', 'quiet'],
    choices: { engine: ['native', 'fuse-native'] },
  };
  const positionals = positionalsOf('status <name> [more..]');

  it('reads positionals from a command string', () => {
    expect(positionalsOf('config <name> [settings..]')).toEqual([
      { name: 'name', required: true, variadic: false },
      { name: 'settings', required: false, variadic: true },
    ]);
    expect(positionalsOf('list')).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['an empty option', { db: '' }, '--db needs a value, not an empty string'],
    ['an empty value of a repeatable option', { dir: ['a', ''] }, '--dir needs a value, not an empty string'],
    ['an empty positional', { name: '' }, '<name> may not be empty'],
    ['a value outside the choices', { engine: 'x' }, '--engine must be one of native, fuse-native, got "x"'],
  ])('checkValues refuses %s', (_n, argv, message) => {
    expect(() => checkValues({ _: [], ...argv }, declared, positionals)).toThrow(new UsageError(message));
  });

  it('checkValues accepts values', () => {
    expect(() => checkValues({ _: [], db: 'a', dir: ['b'], engine: 'native', name: 'p' }, declared, positionals)).not.toThrow();
  });

  it('checkFlagValues takes true and false only', () => {
    expect(() => checkFlagValues(['--json=true', '--quiet=false', '-q', '--db=x', '--name=-q=1'], declared)).not.toThrow();
    expect(() => checkFlagValues(['--json=yes'], declared)).toThrow(new UsageError('--json is a flag and takes no value, got "--json=yes"'));
    expect(() => checkFlagValues(['-q='], declared)).toThrow(new UsageError('-q is a flag and takes no value, got "-q="'));
  });

  it('protectDoubleDash hides what follows -- from option parsing and gives it back', () => {
    const dd = protectDoubleDash(['status', '--json', '--', '-p', '--x']);
    expect(dd.options).toEqual(['status', '--json']);
    expect(dd.tail).toEqual(['-p', '--x']);
    expect(dd.args.slice(0, 2)).toEqual(['status', '--json']);
    expect(dd.args.slice(2).every((a) => !a.startsWith('-'))).toBe(true);
    expect(dd.restore(dd.args)).toEqual(['status', '--json', '-p', '--x']);
    expect(dd.restore(`Unknown argument: ${dd.args[3]}`)).toBe('Unknown argument: --x');
    expect(protectDoubleDash(['list']).args).toEqual(['list']);
  });

  it('usageErrorOf words what yargs finds as one line', () => {
    const ctx = { commands: new Map([['status', positionals]]), options: ['status'], restore: <V>(v: V) => v, declared, command: 'status' };
    expect(usageErrorOf('Invalid values:\n  Argument: x, Given: "y", Choices: "z"', ctx).message).not.toMatch(/\n/);
    expect(usageErrorOf('Missing required arguments: db, engine', ctx)).toEqual(new UsageError('--db and --engine are required'));
    expect(usageErrorOf('Not enough non-option arguments: got 0, need at least 1', ctx)).toEqual(new UsageError('status needs <name>'));
    expect(usageErrorOf('Not enough arguments following: db', ctx)).toEqual(new UsageError('--db needs a value'));
    // An unknown option is named before the positional it took the place of.
    expect(usageErrorOf('Not enough non-option arguments: got 0, need at least 1', { ...ctx, parsed: { argv: { _: ['status'], p: true }, error: null } })).toEqual(new UsageError('unknown option -p'));
  });
});

describe('settings are plain decimal numbers', () => {
  it.each<[string, unknown, unknown]>([
    ['scanRateMiBps', '16', 16],
    ['scanRateMiBps', '2.5', 2.5],
    ['scanIntervalHours', '.5', 0.5],
    ['scanIdleMs', '0', 0],
    ['latencyWarnMs', 35, 35],
  ])('%s=%j is %j', (key, raw, want) => {
    expect(parseConfigValue(key, raw)).toBe(want);
  });

  it.each<[string, string]>([
    ['scanRateMiBps', '0x10'],
    ['scanIdleMs', '0b101'],
    ['scanIdleMs', '0o7'],
    ['scanIdleMs', ' 5'],
    ['scanIdleMs', '5 '],
    ['latencyWarnMs', '1e1'],
    ['latencyWarnMs', '+20'],
    ['scanIdleMs', ''],
    ['scanIdleMs', 'Infinity'],
  ])('%s=%j is refused', (key, raw) => {
    expect(() => parseConfigValue(key, raw)).toThrow(/must be a number .* in plain decimal/);
  });
});
