/**
 * Crafted database rows and crafted input files are untrusted input: each is
 * refused with one printable line (never "internal error", never a stack
 * trace), with the documented exit status, and nothing changes (the database
 * and the images keep their bytes). Rows that only feed a report (scan
 * progress, slow blocks, remap events, the last report's state) are the
 * exception: they are set aside with a one-line warning (docs/format.md).
 */
import Database from 'better-sqlite3';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { type CliResult, Lab, waitFor } from '../../lib/lab/lab.js';

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

  it.each<[string, string, RegExp]>([
    ['pid 0 (kill(2) would address the process group)', "INSERT INTO mounts VALUES ('/srv/x', 0, '/run/remapfs/0123456789abcdef.sock', 1)", /pid 0 is outside the range of process ids \(1 to 4194303\)/],
    ['a text pid with a newline', "INSERT INTO mounts VALUES ('/srv/x', '1' || char(10) || '2', '/run/remapfs/0123456789abcdef.sock', 1)", /pid "1\\n2" is not an integer/],
    ['a relative socket', "INSERT INTO mounts VALUES ('/srv/x', 1, 'x.sock', 1)", /socket "x\.sock" is not an absolute path/],
  ])('a mounts row with %s is refused by every command that looks for a daemon; nothing changes', (_what, insert, problem) => {
    sql(insert);
    for (const args of [['status', 'p'], ['remap', 'p', '8'], ['config', 'p'], ['verify', 'p'], ['list']]) {
      const line = refused(args, problem);
      expect(line).toMatch(/^remapfs: read database mounts row "\/srv\/x": invalid row: .* \(restore the database, or delete that row from its mounts table/);
    }
    // health reports a pair it cannot check (bit 2), naming the row.
    const h = lab.cli(['health', 'p']);
    expect(h.status & 4).toBe(4);
    expect(h.stdout).toMatch(problem);
  });

  it('list with a live daemon that does not answer (no socket yet: starting) prints the table with "?" and one warning', () => {
    sql(`INSERT INTO mounts VALUES ('/srv/x', ${process.pid}, '/run/remapfs/none-such-0123456789.sock', ${Date.now()})`);
    const r = lab.cli(['list']);
    expect({ status: r.status, warning: r.stderr.trim().split('\n') }).toEqual({
      status: 0,
      warning: [expect.stringMatching(new RegExp(`^remapfs: warning: the daemon of /srv/x \\(pid ${process.pid}\\) does not answer \\(.*ENOENT.*\\): where pairs are mounted is not known$`))],
    });
    expect(r.stdout.split('\n').find((l) => l.startsWith('p '))?.trimEnd().endsWith(' ?')).toBe(true);
    const j = lab.cli(['list', '--json']);
    expect(j.status).toBe(0);
    expect((JSON.parse(j.stdout) as { pairs: Array<{ name: string; mounted: boolean }> }).pairs.map((p) => [p.name, p.mounted])).toEqual([['p', false]]);
  });

  it('an imports row whose pid is not a process is refused with one printable line by the commands that read it; nothing changes', () => {
    sql("INSERT INTO imports VALUES (1, 'x' || char(10) || 'y', 1)");
    const want = /^remapfs: read database import of pair p: invalid row: pid "x\\ny" is not an integer \(restore the database, or delete pairs row 1 from it \(an import that never finished\) and run "remapfs import" again\)$/;
    refused(['status', 'p'], want);
    refused(['init', 'p', '--main', lab.image('m2.img', 16 * MiB), '--spare', lab.image('s2.img', 4 * MiB)], want);
  });

  it.each<[string, string, RegExp]>([
    ['a flag that is not true or false', `INSERT INTO config VALUES (1, 'scanEnabled', '"banana"')`, /scanEnabled must be true or false, got "banana"/],
    ['a chunk size past its range', "INSERT INTO config VALUES (1, 'scanChunkKiB', '1000000000')", /scanChunkKiB must be a number from 4 to 65536 in plain decimal, got "1000000000"/],
    ['a text of a megabyte', "INSERT INTO config VALUES (1, 'scanIdleMs', printf('%.1000000c', '9'))", /setting scanIdleMs is 1000000 characters long \(at most 64\)/],
    ['latency thresholds out of order', "INSERT INTO config VALUES (1, 'latencyWarnMs', '500')", /latency thresholds must satisfy latencyWarnMs <= latencyRemapMs <= latencyCriticalMs \(stored: latencyWarnMs=500/],
  ])('a config row with %s is refused by the commands that use the settings, never replaced by the default; nothing changes', (_what, insert, problem) => {
    sql(insert);
    for (const args of [['config', 'p'], ['scan', 'p']]) {
      expect(refused(args, problem)).toMatch(/^remapfs: read settings of pair p: the database has a bad row: .* \(restore the database, or delete the bad rows from its config table/);
    }
    refused(['health', 'p'], problem, 1);
    // Commands that do not use the settings are not stopped by them.
    expect(lab.cli(['status', 'p']).status).toBe(0);
  });

  it('a bad config row is mended by config setting that key, not refused as a usage error; a bad row of another key is named', () => {
    sql("INSERT INTO config VALUES (1, 'scanChunkKiB', '1000000000'), (1, 'scanIdleMs', '\"soon\"')");
    // Setting one of the two: the other is still bad, named, and nothing changes.
    refused(['config', 'p', 'scanChunkKiB=64'], /read settings of pair p: the database has a bad row: setting scanIdleMs is "soon", not a number, true or false|scanIdleMs must be/);
    expect(lab.cli(['config', 'p', 'scanChunkKiB=64', 'scanIdleMs=2000']).status).toBe(0);
    const json = (JSON.parse(lab.ok(['config', 'p', '--json'])) as { config: object }).config;
    expect(json).toMatchObject({ scanChunkKiB: 64, scanIdleMs: 2000 });
  });

  it('a daemon serves a pair whose stored settings are bad (defaults, scanner off, one log line); config through it names the row until a change mends it', async () => {
    sql("INSERT INTO config VALUES (1, 'scanChunkKiB', '1000000000')");
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    const data = crypto.randomBytes(MiB);
    fs.writeFileSync(`${mnt}/p`, data, { flag: 'r+' });
    const fd = fs.openSync(`${mnt}/p`, 'r');
    const back = Buffer.alloc(MiB);
    fs.readSync(fd, back, 0, MiB, 0);
    fs.closeSync(fd);
    expect(back.equals(data)).toBe(true);
    expect(d.output()).toMatch(/remapfs: p: read settings of pair p: the database has a bad row: scanChunkKiB must be a number from 4 to 65536 in plain decimal, got "1000000000" .*; serving the pair with the default settings and the background scanner off until "remapfs config" sets good values/);
    expectOneLine(lab.cli(['config', 'p']), /read settings of pair p: the database has a bad row: scanChunkKiB must be/);
    expectOneLine(lab.cli(['scan', 'p']), /read settings of pair p: the database has a bad row: scanChunkKiB must be/);
    expect(lab.cli(['config', 'p', 'scanChunkKiB=128']).status).toBe(0);
    expect(JSON.parse(lab.ok(['config', 'p', '--json']))).toMatchObject({ config: { scanChunkKiB: 128, scanEnabled: true } });
    lab.ok(['unmount', mnt]);
    expect(await d.exited).toBe(0);
    // The next daemon reads good settings: no line about them.
    const again = await lab.startDaemon(mnt);
    expect(again.output()).not.toMatch(/bad row/);
    lab.ok(['unmount', mnt]);
    await again.exited;
  });

  it('a daemon whose bad config row is deleted (as the hint says) takes the stored settings again; the control file shows the error until then', async () => {
    sql("INSERT INTO config VALUES (1, 'scanChunkKiB', '1000000000'), (1, 'scanIdleMs', '250')");
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    expectOneLine(lab.cli(['config', 'p']), /read settings of pair p: the database has a bad row: scanChunkKiB must be/);
    const shown = JSON.parse(fs.readFileSync(`${mnt}/.remapfs/p/config`, 'utf8')) as { error?: string };
    expect(Object.keys(shown)).toEqual(['error']);
    expect(shown.error).toMatch(/the database has a bad row: scanChunkKiB must be/);
    sql("DELETE FROM config WHERE key = 'scanChunkKiB'");
    expect(JSON.parse(lab.ok(['config', 'p', '--json']))).toMatchObject({ config: { scanIdleMs: 250, scanEnabled: true } });
    expect(JSON.parse(fs.readFileSync(`${mnt}/.remapfs/p/config`, 'utf8'))).toMatchObject({ scanIdleMs: 250, scanEnabled: true });
    await waitFor('the daemon to say so', () => /remapfs: p: the stored settings are good again; the background scanner follows them/.test(d.output()), 5000);
    lab.ok(['unmount', mnt]);
    expect(await d.exited).toBe(0);
  });

  it('unmount with REMAPFS_DB set but empty is refused before the daemon is asked to stop', async () => {
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    const r = lab.cli(['unmount', mnt], { env: { ...lab.env(), REMAPFS_DB: '' } });
    expectOneLine(r, /REMAPFS_DB is set but empty/, 2);
    expect(d.child.exitCode).toBeNull();
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${mnt} `);
    lab.ok(['unmount', mnt]);
    expect(await d.exited).toBe(0);
  });

  type HealthJson = { exitStatus: number; pairs: Array<{ slowBlocks: number; remapEvents: number; trend: { ratePerDay: number } }> };

  it('bad slow_blocks and remap event rows are left out of the reports, with one warning line each', () => {
    lab.ok(['remap', 'p', '8']);
    sql(`INSERT INTO slow_blocks VALUES (1, -5, 50, 1), (1, 99999999, 50, 1), (1, 7, 'slow', 1), (1, 9, 30.5, 1);
         INSERT INTO events (pair_id, time, kind) VALUES (1, 'yesterday', 'remap'), (1, -5, 'remap'), (1, 1e300, 'remap')`);
    const r = lab.cli(['health', 'p', '--json']);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      'remapfs: warning: pair p: ignoring 3 bad slow block rows, the first: block -5 is outside the device (0 to 4095)',
      'remapfs: warning: pair p: ignoring 3 bad remap event rows, the first: time -5 is not a time (ms since the epoch, 0 to 2^53-1)',
    ]);
    const report = JSON.parse(r.stdout) as HealthJson;
    expect(report.pairs[0]).toMatchObject({ slowBlocks: 1, remapEvents: 1 });
    const map = lab.cli(['map', 'p']);
    expect(map.status).toBe(0);
    expect(map.stderr).toBe('remapfs: warning: pair p: ignoring 3 bad slow block rows, the first: block -5 is outside the device (0 to 4095)\n');
  });

  it.each<[string, string, string]>([
    ['a time that is not a time', "INSERT INTO report_state VALUES (1, 'yesterday', 0)", 'reported_at "yesterday" is not a time \\(ms since the epoch, 0 to 2\\^53-1\\)'],
    ['a time in the future', `INSERT INTO report_state VALUES (1, ${Date.now() + 365 * 86400000}, 1)`, 'reported_at \\d+ is more than a day after now \\(\\d+\\)'],
    ['more remaps seen than there are', 'INSERT INTO report_state VALUES (1, 1000, 1000000000000000)', 'remap_events 1000000000000000 is more than the 1 remap events recorded'],
  ])('a report_state row with %s is read as none: the new remap is reported (bit 6), with one warning, and the next report is quiet', (_what, insert, problem) => {
    lab.ok(['remap', 'p', '8']);
    sql(insert);
    const r = lab.cli(['health', 'p']);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(new RegExp(`^remapfs: warning: pair p: ignoring the stored state of the last report: ${problem}; new remaps are counted since the pair was made$`)),
    ]);
    expect(r.stdout).toMatch(/1 new remap\(s\) since the pair was made/);
    expect(r.status & 64).toBe(64);
    const next = lab.cli(['health', 'p']);
    expect(next.stderr).toBe('');
    expect(next.status & 64).toBe(0);
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
