/**
 * Bad input: every case gets one line on stderr that names the problem, a
 * non-zero exit status, no stack trace, and changes nothing.
 */
import Database from 'better-sqlite3';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { type CliResult, Lab, requireKernelFeatures } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;

function expectRefused(r: CliResult, word: RegExp, status?: number): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^remapfs: /);
  expect(lines[0]).toMatch(word);
  expect(r.stderr).not.toMatch(/\n\s+at |Error:|TypeError|SqliteError/);
  expect(r.status).not.toBe(0);
  if (status !== undefined) expect(r.status).toBe(status);
}

function mountinfo(): string {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8');
}

describe('bad input', () => {
  let lab: Lab;
  let main: string;
  let spare: string;
  beforeAll(() => requireKernelFeatures());
  beforeEach(() => {
    lab = new Lab();
    main = lab.image('main.img', 16 * MiB);
    spare = lab.image('spare.img', 4 * MiB);
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  /** Runs `args`, expects a refusal, and checks that the database did not change. */
  function refusedWithoutChange(args: string[], word: RegExp, status?: number): void {
    const before = fs.existsSync(lab.dbPath) ? lab.ok(['list', '--json']) : null;
    const dbBytes = fs.existsSync(lab.dbPath) ? fs.readFileSync(lab.dbPath) : null;
    expectRefused(lab.cli(args), word, status);
    if (before !== null) expect(lab.ok(['list', '--json'])).toBe(before);
    else expect(fs.existsSync(lab.dbPath)).toBe(false);
    if (dbBytes) expect(crypto.createHash('sha256').update(fs.readFileSync(lab.dbPath)).digest('hex')).toBe(crypto.createHash('sha256').update(dbBytes).digest('hex'));
  }

  it('init prints a UUID and list shows the pair', () => {
    const r = lab.cli(['init', 'ok', '--main', main, '--spare', spare]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((JSON.parse(lab.ok(['list', '--json'])) as { pairs: Array<{ name: string }> }).pairs.map((p) => p.name)).toEqual(['ok']);
  });

  it.each<[string, string[], RegExp, number]>([
    ['an unknown pair (status)', ['status', 'nope'], /no such pair/, 1],
    ['an unknown pair (remap)', ['remap', 'nope', '1'], /no such pair/, 1],
    ['a duplicate name', ['init', 'p', '--main', 'MAIN2', '--spare', 'SPARE2'], /already exists/, 1],
    ['main and spare the same file', ['init', 'q', '--main', 'MAIN2', '--spare', 'MAIN2'], /same device/, 1],
    ['main and spare the same file through a symlink', ['init', 'q', '--main', 'MAIN2', '--spare', 'LINK2'], /same device/, 1],
    ['a missing main', ['init', 'q', '--main', '/nonexistent/main.img', '--spare', 'SPARE2'], /nonexistent.*(no such file|ENOENT)/i, 1],
    ['a missing spare', ['init', 'q', '--main', 'MAIN2', '--spare', '/nonexistent/spare.img'], /nonexistent/, 1],
    ['a spare too small for any spare block', ['init', 'q', '--main', 'MAIN2', '--spare', 'TINY'], /too small/, 1],
    ['block size 256', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE2', '--block-size', '256'], /power of two/, 2],
    ['block size 1000', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE2', '--block-size', '1000'], /power of two/, 2],
    ['block size 131072', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE2', '--block-size', '131072'], /power of two/, 2],
    ['block size abc', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE2', '--block-size', 'abc'], /block-size/, 2],
    ['block size 0', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE2', '--block-size', '0'], /power of two/, 2],
    ['a pair name with a slash', ['init', 'a/b', '--main', 'MAIN2', '--spare', 'SPARE2'], /invalid pair name/, 2],
    ['a hidden pair name', ['init', '.hidden', '--main', 'MAIN2', '--spare', 'SPARE2'], /invalid pair name/, 2],
    ['a main already used by another pair', ['init', 'q', '--main', 'MAIN', '--spare', 'SPARE2'], /already used by pair p/, 1],
    ['a spare already used by another pair', ['init', 'q', '--main', 'MAIN2', '--spare', 'SPARE'], /already used by pair p/, 1],
    ['a device already used, through a hard link', ['init', 'q', '--main', 'HARDLINK', '--spare', 'SPARE2'], /already used by pair p|belongs to pair p/, 1],
    ['a negative sector', ['remap', 'p', '-1'], /Unknown argument|sector/, 2],
    ['a fractional sector', ['remap', 'p', '1.5'], /sector must be a non-negative integer/, 2],
    ['a sector that is not a number', ['remap', 'p', 'abc'], /sector must be a non-negative integer/, 2],
    ['a sector beyond the end', ['remap', 'p', String(16 * 2048)], /outside the device/, 1],
    ['an unknown command', ['frobnicate'], /Unknown argument|unknown/i, 2],
    ['an unknown option', ['list', '--frob'], /unknown option --frob/, 2],
    ['a missing required option', ['init', 'q', '--main', 'MAIN2'], /--spare is required/, 2],
    ['unmount of a directory that is not a remapfs mount', ['unmount', 'TMPDIR'], /not a remapfs mount/, 1],
  ])('refuses %s: %j gives %p, exit %d', (_name, args, word, status) => {
    lab.ok(['init', 'p', '--main', main, '--spare', spare]);
    const main2 = lab.image('main2.img', 16 * MiB);
    const spare2 = lab.image('spare2.img', 4 * MiB);
    fs.symlinkSync(main2, lab.path('link2.img'));
    fs.linkSync(main, lab.path('hardlink.img'));
    const subst: Record<string, string> = {
      MAIN: main,
      SPARE: spare,
      MAIN2: main2,
      SPARE2: spare2,
      LINK2: lab.path('link2.img'),
      HARDLINK: lab.path('hardlink.img'),
      TINY: lab.image('tiny.img', 16 * 1024),
      TMPDIR: lab.mkdir('plain'),
    };
    refusedWithoutChange(
      args.map((a) => subst[a] ?? a),
      word,
      status,
    );
  });

  it('refuses bad mount points and leaves nothing mounted', async () => {
    expectRefused(lab.cli(['mount', lab.path('mnt')]), /no such file|database/i); // no database yet
    lab.ok(['init', 'p', '--main', main, '--spare', spare]);
    expectRefused(lab.cli(['mount', lab.path('missing')]), /missing: .*(no such file|ENOENT)/i);
    const full = lab.mkdir('full');
    fs.writeFileSync(path.join(full, 'x'), 'x');
    expectRefused(lab.cli(['mount', full]), /not empty/);
    expect(mountinfo()).not.toContain(full);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const second = lab.mkdir('second');
    expectRefused(lab.cli(['mount', second]), /already served at/);
    expect(mountinfo()).not.toContain(second);
  });

  it('refuses to mount with a database that has no pairs, and mounts nothing', () => {
    lab.ok(['discover', '--import', '--no-block-devices']); // creates an empty database
    const mnt = lab.mkdir('mnt');
    expectRefused(lab.cli(['mount', mnt]), /the database has no pairs/);
    expect(mountinfo()).not.toContain(` ${mnt} `);
  });

  it.each([
    ['random bytes', (p: string) => fs.writeFileSync(p, crypto.randomBytes(65536)), /not a database|corrupt/],
    ['an unrelated SQLite database', (p: string) => {
      const db = new Database(p);
      db.exec('CREATE TABLE customers (id INTEGER)');
      db.close();
    }, /not a remapfs database/],
    ['a directory', (p: string) => fs.mkdirSync(p), /not a regular file/],
  ])('refuses a database that is %s, and leaves it as it was', (_name, make, word) => {
    const file = lab.path('bad.db');
    make(file);
    const before = fs.statSync(file).isFile() ? fs.readFileSync(file) : null;
    for (const args of [['list'], ['status', 'p'], ['init', 'p', '--main', main, '--spare', spare], ['mount', lab.mkdir('m')]]) {
      expectRefused(lab.cli(['--db', file, ...args]), word);
    }
    if (before) expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('a missing database is reported and not created by read commands', () => {
    for (const args of [['list'], ['status', 'p'], ['health', 'p'], ['verify', 'p']]) {
      expectRefused(lab.cli(args), /no such file/);
      expect(fs.existsSync(lab.dbPath)).toBe(false);
    }
  });

  it('refuses to unmount while the virtual file is held open, then unmounts', async () => {
    lab.ok(['init', 'p', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    const fd = fs.openSync(path.join(mnt, 'p'), 'r');
    expectRefused(lab.cli(['unmount', mnt]), /busy: open handles on p \(1\)/);
    expect(mountinfo()).toContain(` ${mnt} `);
    fs.closeSync(fd);
    expect(lab.cli(['unmount', mnt]).status).toBe(0);
    expect(await d.exited).toBe(0);
  });
});
