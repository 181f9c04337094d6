/**
 * Crafted database rows and crafted input files are untrusted input: each is
 * refused with one printable line (never "internal error", never a stack
 * trace), with the documented exit status, and nothing changes (the database
 * and the images keep their bytes). A damaged scan progress row is the one
 * exception: it is set aside with a one-line warning (docs/health.md).
 */
import Database from 'better-sqlite3';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { type CliResult, Lab } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function expectOneLine(r: CliResult, word: RegExp, status = 1): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  const line = lines[0] as string;
  expect(line).toMatch(/^remapfs: /);
  expect(line).not.toMatch(/internal error/);
  expect(line).toMatch(word);
  // Printable: no control bytes or raw binary, and not a novel.
  expect([...line].some((ch) => ch < ' ' || ch === '\x7f' || ch === '\ufffd')).toBe(false);
  expect(line.length).toBeLessThan(600);
  expect(r.stderr).not.toMatch(/\n\s+at |TypeError|SqliteError/);
  expect(r.status).toBe(status);
  return line;
}

describe('crafted database rows and input files', () => {
  let lab: Lab;
  let main: string;
  let spare: string;
  beforeEach(() => {
    lab = new Lab();
    main = lab.image('main.img', 16 * MiB);
    spare = lab.image('spare.img', 4 * MiB);
    lab.ok(['init', 'p', '--main', main, '--spare', spare]);
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  function sql(statements: string): void {
    const db = new Database(lab.dbPath);
    try {
      db.exec(statements);
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
  }

  /** The database and both images, by content. */
  function state(): string[] {
    return [sha(lab.dbPath), sha(main), sha(spare)];
  }

  /** Runs `args`: one line matching `word`, exit status `status`, and nothing changed. */
  function refused(args: string[], word: RegExp, status = 1): string {
    const before = state();
    const line = expectOneLine(lab.cli(args), word, status);
    expect(state()).toEqual(before);
    return line;
  }

  it.each<[string, string, RegExp]>([
    ['a negative main block', "INSERT INTO remaps VALUES (1, -5, 200, 'manual', 'remapped', 0, 1)", /main block -5 is outside the device \(0 to 4095\)/],
    ['a fractional main block', "INSERT INTO remaps VALUES (1, 2.5, 200, 'manual', 'remapped', 0, 1)", /main block 2\.5 is not an integer/],
    ['a text main block', "INSERT INTO remaps VALUES (1, 'abc', 200, 'manual', 'remapped', 0, 1)", /main block "abc" is not an integer/],
    ['a main block past the end', "INSERT INTO remaps VALUES (1, 99999999999, 200, 'manual', 'remapped', 0, 1)", /main block 99999999999 is outside the device/],
    ['a huge lost sector count', "INSERT INTO remaps VALUES (1, 5, 200, 'manual', 'remapped', 99999, 1)", /main block 5: lost sector count 99999 is outside the block \(0 to 8\)/],
    ['an unknown reason with a newline', "INSERT INTO remaps VALUES (1, 5, 200, 'bogus' || char(10) || 'x', 'remapped', 0, 1)", /main block 5: unknown reason "bogus\\nx"/],
  ])('a remaps row with %s is refused by every command that reads the table, naming the problem', (_what, insert, problem) => {
    sql(insert);
    for (const args of [['status', 'p'], ['list'], ['verify', 'p'], ['map', 'p'], ['export', 'p', '--ddrescue-map', lab.path('e.map')]]) {
      const line = refused(args, problem);
      expect(line).toMatch(/^remapfs: read remap table of pair p: the database has a bad row: /);
      expect(line).not.toMatch(/2\^53/);
    }
    expect(fs.existsSync(lab.path('e.map'))).toBe(false);
    // health's exit status is a bitmask: 1 is "could not run at all".
    refused(['health', 'p'], problem, 1);
  });

  it('a bad_sectors row past the end of the device stops export from writing areas past it', () => {
    sql("INSERT INTO bad_sectors VALUES (1, 99999999999, 'crafted', 1)");
    refused(['export', 'p', '--ddrescue-map', lab.path('e.map')], /^remapfs: read bad sectors of pair p: the database has a bad row: bad sector 99999999999 is outside the device \(0 to 32767\)/);
    expect(fs.existsSync(lab.path('e.map'))).toBe(false);
  });

  it.each(['remaps', 'pairs', 'events'])('a database without its %s table is refused at open by every command; verify claims nothing', (table) => {
    sql(`DROP TABLE ${table}`);
    for (const args of [['status', 'p'], ['list'], ['verify', 'p'], ['repair', 'p']]) {
      refused(args, new RegExp(`^remapfs: open database \\S+: the database has no table ${table} \\(it was damaged or changed by hand; move it aside`));
    }
  });

  it('a database whose table lacks a column is refused at open', () => {
    sql('ALTER TABLE events DROP COLUMN detail');
    refused(['verify', 'p'], /^remapfs: open database \S+: the database's table events has no column detail \(/);
  });

  it('a database of schema version 99 is refused before anything is created in it', () => {
    const file = lab.path('v99.db');
    const db = new Database(file);
    db.exec("CREATE TABLE meta (key, value); INSERT INTO meta VALUES ('schema_version', '99')");
    db.close();
    const before = sha(file);
    expectOneLine(lab.cli(['--db', file, 'list']), /^remapfs: open database \S+: unsupported schema version 99; this remapfs reads version 1 \(/);
    expect(sha(file)).toBe(before);
    const after = new Database(file, { readonly: true });
    try {
      expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()).toEqual(['meta']);
    } finally {
      after.close();
    }
  });

  it('a read-only command leaves an existing empty file empty; init gives it a schema, and still creates a missing one', () => {
    const empty = lab.path('empty.db');
    fs.writeFileSync(empty, '');
    for (const args of [['list'], ['status', 'p']]) {
      expectOneLine(lab.cli(['--db', empty, ...args]), /^remapfs: open database \S+: not a remapfs database \(it has no tables\) \(run "remapfs init" first/);
      expect(fs.statSync(empty).size).toBe(0);
    }
    const m2 = lab.image('m2.img', 16 * MiB);
    const s2 = lab.image('s2.img', 4 * MiB);
    lab.ok(['--db', empty, 'init', 'q', '--main', m2, '--spare', s2]);
    expect(lab.ok(['--db', empty, 'list'])).toMatch(/^q\s/m);
    const missing = lab.path('sub', 'new.db');
    const m3 = lab.image('m3.img', 16 * MiB);
    const s3 = lab.image('s3.img', 4 * MiB);
    lab.ok(['--db', missing, 'init', 'r', '--main', m3, '--spare', s3]);
    expect(lab.ok(['--db', missing, 'list'])).toMatch(/^r\s/m);
  });

  it('a damaged scan progress row is set aside with one warning line, and the next scan writes a good one', () => {
    sql("INSERT INTO scan_state VALUES (1, -99, NULL, -1, NULL, 99999999999, 0, '{garbage')");
    for (const args of [['status', 'p'], ['map', 'p'], ['health', 'p', '--json']]) {
      const r = lab.cli(args);
      expect(r.status).toBe(0);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines).toEqual([expect.stringMatching(/^remapfs: warning: pair p: ignoring the stored scan progress: cursor_block -99 is not a block of the device \(0 to 4096\); the next scan starts a new pass$/)]);
    }
    type Health = { pairs: Array<{ scan: { passesCompleted: number; inProgress: boolean } }> };
    const report = JSON.parse(lab.cli(['health', 'p', '--json']).stdout) as Health;
    expect(report.pairs[0]?.scan).toMatchObject({ passesCompleted: 0, inProgress: false });
    sql("UPDATE scan_state SET cursor_block = 5, max_block_scanned = 7, passes_completed = 0, last_summary = '{garbage' || char(1)");
    const r = lab.cli(['health', 'p', '--json']);
    expect(r.stderr).toMatch(/^remapfs: warning: pair p: ignoring the stored scan progress: last_summary is not valid JSON \("\{garbage\\x01"\)/);
    const scan = lab.cli(['scan', 'p', '--json']);
    expect(scan.status).toBe(0);
    expect(scan.stderr).toMatch(/ignoring the stored scan progress: last_summary is not valid JSON/);
    const after = lab.cli(['health', 'p', '--json']);
    expect(after.stderr).toBe('');
    expect((JSON.parse(after.stdout) as Health).pairs[0]?.scan.passesCompleted).toBe(1);
  });

  it('a mapfile that marks the whole device bad is refused up front, with the blocks it needs and those free', () => {
    fs.writeFileSync(lab.path('whole.map'), `# Mapfile\n0x0 + 1\n0x0 0x${(16 * MiB).toString(16)} -\n`);
    const t0 = Date.now();
    refused(['import-bad', 'p', '--ddrescue-map', lab.path('whole.map')], /^remapfs: import-bad p: the list names 4095 blocks that are not remapped yet, each of which may need a spare block, but only \d+ of the spare pool's blocks are free \(nothing was changed/);
    expect(Date.now() - t0).toBeLessThan(30000);
  });

  it('a file that is not a mapfile or a badblocks list is refused with one printable line', () => {
    const binary = lab.path('binary.bin');
    // Bytes 0x80-0xbf never decode as UTF-8 (nor as white space): each is one replacement character.
    const junk = Buffer.from(Array.from({ length: 60 }, (_, i) => 0x80 + (i % 64)));
    fs.writeFileSync(binary, Buffer.concat([Buffer.from('RMPFSLOT\x01\x00\x1b[31m'), junk, Buffer.from(' ? 1\n'), junk, Buffer.from('\n')]));
    const evac = refused(['evacuate', 'p', '--to', lab.path('out.img'), '--mapfile', binary], /^remapfs: read mapfile \S+: line 1: bad current position "RMPFSLOT\\x01\\x00\\x1b\[31m/);
    expect(evac).toMatch(/…" \(is it the mapfile of this evacuation\?/);
    expect(fs.existsSync(lab.path('out.img'))).toBe(false);
    refused(['import-bad', 'p', '--badblocks', binary], /^remapfs: parse \S+: line 1: "RMPFSLOT\\x01\\x00\\x1b\[31m.*…" is not a block number$/);
    refused(['import-bad', 'p', '--ddrescue-map', binary], /^remapfs: parse \S+: line 1: bad current position "RMPFSLOT/);
  });

  it('numbers beyond range in a badblocks list or a mapfile are refused by the parser, naming the line and the value', () => {
    fs.writeFileSync(lab.path('huge.txt'), '1\n99999999999999999999999\n');
    refused(['import-bad', 'p', '--badblocks', lab.path('huge.txt')], /^remapfs: parse \S+: line 2: block number 99999999999999999999999 is out of range \(2\^53 or more sectors\)$/);
    fs.writeFileSync(lab.path('past.txt'), '1\n\n99999999\n');
    refused(['import-bad', 'p', '--badblocks', lab.path('past.txt')], /^remapfs: parse \S+: line 3: block 99999999 \(of 1024 bytes\) lies outside the device \(16384 such blocks\)$/);
    fs.writeFileSync(lab.path('huge.map'), '0 + 1\n0 0x10000000000 -\n');
    refused(['import-bad', 'p', '--ddrescue-map', lab.path('huge.map')], /^remapfs: parse \S+: its areas cover 1099511627776 bytes, but pair p has 16777216$/);
    fs.writeFileSync(lab.path('big.map'), '0 + 1\n0 0xFFFFFFFFFFFFFFFF -\n');
    refused(['import-bad', 'p', '--ddrescue-map', lab.path('big.map')], /^remapfs: parse \S+: line 2: bad size "0xFFFFFFFFFFFFFFFF" \(2\^53 or more\)$/);
  });
});
