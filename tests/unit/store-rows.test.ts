/**
 * The store's row readers refuse crafted rows (lib/store/rows.ts, remaps.ts,
 * bad-sectors.ts): list() and the aggregates (counts, byReason, lostSectors)
 * agree on which rows are bad (the rules in JavaScript and in SQL), and each
 * refusal is one line naming the row and the problem. Rows that drive an
 * action (mounts, imports, config) are refused the same way; rows that only
 * feed a report (slow_blocks, events, report_state) are left out with one
 * warning. Opening checks the schema before it changes anything; parsers
 * quote files printably.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import { excerpt } from '../../lib/errors.js';
import { parseBadblocks, parseMapfile } from '../../lib/rescue/mapfile.js';
import { type NewPair, type PairRecord, Store } from '../../lib/store/db.js';
import { DEFAULT_CONFIG } from '../../lib/health/config.js';
import { loadConfig, loadReportState, scanStateProblem } from '../../lib/health/history.js';
import { dailyCounts } from '../../lib/health/score.js';
import type { ScanStateRow } from '../../lib/store/db.js';

// 1 GiB main and 64 MiB spare in 4 KiB blocks: 262144 main blocks, 16384 spare blocks, 8 sectors a block.
const PAIR: NewPair = { name: 'p', uuid: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/dev/a', sparePath: '/dev/b', blockSize: 4096, mainBytes: 1 << 30, spareBytes: 1 << 26, createdAt: 1000, metaSeq: 3 };

describe('row readers', () => {
  let dir: string;
  let file: string;
  let store: Store;
  let pair: PairRecord;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-rows-'));
    file = path.join(dir, 'remapfs.db');
    store = Store.open(file, { create: true });
    pair = store.pairs.insert(PAIR);
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function raw(sql: string): void {
    const db = new Database(file);
    try {
      db.exec(sql);
    } finally {
      db.close();
    }
  }

  const good = "(1, 7, 70, 'manual', 'remapped', 0, 5)";
  it.each<[string, string, RegExp | undefined]>([
    ['a good remapped row', good, undefined],
    ['a good pending row', "(1, 8, NULL, 'imported', 'pending', 8, 5)", undefined],
    ['the last main block', "(1, 262143, 16383, 'label', 'remapped', 0, 5)", undefined],
    ['a negative main block', "(1, -5, 70, 'manual', 'remapped', 0, 5)", /main block -5 is outside the device \(0 to 262143\)/],
    ['a main block one past the end', "(1, 262144, 70, 'manual', 'remapped', 0, 5)", /main block 262144 is outside the device/],
    ['a fractional main block', "(1, 2.5, 70, 'manual', 'remapped', 0, 5)", /main block 2\.5 is not an integer/],
    ['a text main block', "(1, 'x', 70, 'manual', 'remapped', 0, 5)", /main block "x" is not an integer/],
    ['a spare block past the spare', "(1, 7, 16384, 'manual', 'remapped', 0, 5)", /main block 7: spare block 16384 is outside the spare \(0 to 16383\)/],
    ['a negative spare block', "(1, 7, -1, 'manual', 'remapped', 0, 5)", /spare block -1 is outside the spare/],
    ['a remapped row without a spare block', "(1, 7, NULL, 'manual', 'remapped', 0, 5)", /a remapped block has no spare block/],
    ['a pending row with a spare block', "(1, 7, 70, 'imported', 'pending', 0, 5)", /a pending block has spare block 70 \(must be NULL\)/],
    ['an unknown state', "(1, 7, 70, 'manual', 'gone', 0, 5)", /unknown state "gone"/],
    ['an unknown reason', "(1, 7, 70, 'none', 'remapped', 0, 5)", /unknown reason "none"/],
    ['lost sectors past the block', "(1, 7, 70, 'manual', 'remapped', 9, 5)", /lost sector count 9 is outside the block \(0 to 8\)/],
    ['negative lost sectors', "(1, 7, 70, 'manual', 'remapped', -1, 5)", /lost sector count -1 is outside the block/],
    ['a negative time', "(1, 7, 70, 'manual', 'remapped', 0, -1)", /time -1 is not a non-negative integer/],
    ['a text time', "(1, 7, 70, 'manual', 'remapped', 0, 'now')", /time "now" is not a non-negative integer/],
  ])('remaps: %s', (_what, values, problem) => {
    raw(`INSERT INTO remaps VALUES ${values}`);
    const readers: Array<() => unknown> = [() => store.remaps.list(pair.id), () => store.remaps.counts(pair.id), () => store.remaps.byReason(pair.id), () => store.remaps.lostSectors(pair.id)];
    for (const read of readers) {
      if (problem) expect(read).toThrow(problem);
      else expect(read).not.toThrow();
    }
    if (problem) expect(() => store.remaps.list(pair.id)).toThrow(/^read remap table of pair p: the database has a bad row: .* \(restore the database/);
  });

  it('retired rows and bad sectors are checked too', () => {
    raw(`INSERT INTO remaps VALUES ${good}; INSERT INTO retired VALUES (1, 99999, 5)`);
    expect(() => store.remaps.retiredWithTimes(pair.id)).toThrow(/retired spare block 99999 is outside the spare/);
    expect(() => store.remaps.counts(pair.id)).toThrow(/retired spare block 99999 is outside the spare/);
    raw('DELETE FROM retired');
    expect(store.remaps.counts(pair.id)).toEqual({ remapped: 1, label: 0, pending: 0, retired: 0 });
    store.badSectors.add(pair.id, [0, 2097151], 'list', 1);
    expect(store.badSectors.list(pair.id)).toEqual([0, 2097151]);
    raw("INSERT INTO bad_sectors VALUES (1, 2097152, 'x', 1)");
    expect(() => store.badSectors.list(pair.id)).toThrow(/^read bad sectors of pair p: the database has a bad row: bad sector 2097152 is outside the device \(0 to 2097151\)/);
  });
});

describe('opening checks the schema before changing anything', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-schema-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses a missing table or column, another version, and an empty file for a read-only open', () => {
    const file = path.join(dir, 'a.db');
    Store.open(file, { create: true }).close();
    const db = new Database(file);
    db.exec('DROP TABLE slow_blocks');
    db.close();
    expect(() => Store.open(file, { create: false })).toThrow(/^open database .*: the database has no table slow_blocks \(it was damaged or changed by hand/);
    expect(() => Store.open(file, { create: true })).toThrow(/has no table slow_blocks/);

    const v99 = path.join(dir, 'v99.db');
    const d = new Database(v99);
    d.exec("CREATE TABLE meta (key, value); INSERT INTO meta VALUES ('schema_version', '99')");
    d.close();
    const before = fs.readFileSync(v99);
    expect(() => Store.open(v99, { create: true })).toThrow(/unsupported schema version 99; this remapfs reads version 1/);
    expect(fs.readFileSync(v99).equals(before)).toBe(true);

    const empty = path.join(dir, 'empty.db');
    fs.writeFileSync(empty, '');
    expect(() => Store.open(empty, { create: false })).toThrow(/not a remapfs database \(it has no tables\) \(run "remapfs init" first/);
    expect(fs.statSync(empty).size).toBe(0);
    Store.open(empty, { create: true }).close();
    Store.open(empty, { create: false }).close();
  });
});

describe('parsers quote input printably, with line numbers', () => {
  it('excerpt escapes control and binary characters and cuts long text', () => {
    expect(excerpt('a\nb\x1b[31m\x00')).toBe('a\\nb\\x1b[31m\\x00');
    expect(excerpt('x'.repeat(50))).toBe(`${'x'.repeat(40)}…`);
    expect(excerpt(Buffer.from([0x41, 0xff, 0x0a]))).toBe('A\\xff\\n');
    expect(excerpt('\ufffd\u2028é')).toBe('\\u{fffd}\\u{2028}é');
  });

  it('mapfiles and badblocks lists name the line and the value', () => {
    expect(() => parseMapfile('# c\n\nzz\x07 ? 1\n')).toThrow(/^line 3: bad current position "zz\\x07"$/);
    expect(() => parseMapfile('0 ? 1\n0 0xFFFFFFFFFFFFFFFF -\n')).toThrow(/^line 2: bad size "0xFFFFFFFFFFFFFFFF" \(2\^53 or more\)$/);
    expect(() => parseMapfile('0 Q 1\n')).toThrow(/^line 1: bad current status "Q"$/);
    expect(() => parseBadblocks('1\n99999999999999999999999\n', 1024)).toThrow(/^line 2: block number 99999999999999999999999 is out of range/);
    expect(() => parseBadblocks('1\n16\n', 1024, 32)).toThrow(/^line 2: block 16 \(of 1024 bytes\) lies outside the device \(16 such blocks\)$/);
    expect(parseBadblocks('15\n', 1024, 32)).toEqual([30, 31]);
  });
});

describe('scan_state rows (scanStateProblem)', () => {
  const good: ScanStateRow = { cursorBlock: 10, passStartedAt: 1_700_000_000_000, passesCompleted: 1, lastPassFinishedAt: 1_700_000_000_500, maxBlockScanned: 4095, nextDueAt: 1_700_003_600_000, summaries: null };

  it('accepts what the scanner writes, due times with a fraction of a millisecond included', () => {
    // scanIntervalHours=0.001 and the like make the next due time fractional; such a row is the scanner's own.
    expect(scanStateProblem({ ...good, nextDueAt: 1_796_466_302_188.6365 }, 4096)).toEqual({ summaries: { last: null, current: null } });
  });

  it.each<[string, Partial<ScanStateRow>, RegExp]>([
    ['a cursor past the device', { cursorBlock: 4097 }, /cursor_block 4097 is not a block of the device \(0 to 4096\)/],
    ['a negative due time', { nextDueAt: -1 }, /next_due_at -1 is not a time/],
    ['a due time that is not a number', { nextDueAt: Number.NaN }, /next_due_at NaN is not a time/],
    ['summaries that are not JSON', { summaries: '{garbage' }, /last_summary is not valid JSON/],
  ])('refuses %s', (_what, change, want) => {
    const r = scanStateProblem({ ...good, ...change }, 4096);
    expect('problem' in r ? r.problem : '').toMatch(want);
  });
});

describe('rows of mounts, imports, config, slow_blocks, events and report_state', () => {
  let dir: string;
  let file: string;
  let store: Store;
  let pair: PairRecord;
  let warnings: string[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-rows-'));
    file = path.join(dir, 'remapfs.db');
    store = Store.open(file, { create: true });
    pair = store.pairs.insert(PAIR);
    warnings = [];
    store.warn = (line) => warnings.push(line);
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one statement with parameters on the file, as another program would. */
  function run(sql: string, ...params: unknown[]): void {
    const db = new Database(file);
    try {
      db.prepare(sql).run(...params);
    } finally {
      db.close();
    }
  }

  const SOCKET = '/run/remapfs/0123456789abcdef.sock';

  it.each<[string, unknown[], RegExp]>([
    ['pid 0 (kill(2) would address the process group)', ['/srv/m', 0, SOCKET, 1], /pid 0 is outside the range of process ids \(1 to 4194303\)/],
    ['a negative pid', ['/srv/m', -1, SOCKET, 1], /pid -1 is outside the range of process ids/],
    ['a pid past pid_max', ['/srv/m', 4194304, SOCKET, 1], /pid 4194304 is outside the range of process ids/],
    ['a fractional pid', ['/srv/m', 2.5, SOCKET, 1], /pid 2\.5 is not an integer/],
    ['a text pid', ['/srv/m', '1\n2', SOCKET, 1], /pid "1\\n2" is not an integer/],
    ['a relative mountpoint', ['srv/m', process.pid, SOCKET, 1], /mountpoint "srv\/m" is not an absolute path/],
    ['a mountpoint that is not normalized', ['/srv/../m', process.pid, SOCKET, 1], /mountpoint "\/srv\/\.\.\/m" is not an absolute path/],
    ['a blob mountpoint', [Buffer.from('/srv/m'), process.pid, SOCKET, 1], /mountpoint a blob is not text/],
    ['a relative socket', ['/srv/m', process.pid, 'm.sock', 1], /socket "m\.sock" is not an absolute path/],
    ['a socket too long for a Unix socket', ['/srv/m', process.pid, `/${'s'.repeat(200)}`, 1], /socket "\/s+…" is 201 bytes long \(at most 107\)/],
    ['a text start time', ['/srv/m', process.pid, SOCKET, 'yesterday'], /started_at "yesterday" is not a time/],
    ['a negative start time', ['/srv/m', process.pid, SOCKET, -1], /started_at -1 is not a time/],
  ])('a mounts row with %s is refused by live() and get(), in one line', (_what, values, problem) => {
    run('INSERT INTO mounts (mountpoint, pid, socket, started_at) VALUES (?, ?, ?, ?)', ...values);
    const whole = /^read database mounts row .*: invalid row: .* \(restore the database, or delete that row from its mounts table/;
    for (const read of [() => store.mounts.live(), () => store.mounts.get(values[0] as string)]) {
      expect(read).toThrow(whole);
      expect(read).toThrow(problem);
    }
  });

  it('a good mounts row is read as it is', () => {
    const now = Date.now();
    run('INSERT INTO mounts (mountpoint, pid, socket, started_at) VALUES (?, ?, ?, ?)', '/srv/m', process.pid, SOCKET, now);
    expect(store.mounts.live()).toEqual([{ mountpoint: '/srv/m', pid: process.pid, socket: SOCKET, startedAt: now }]);
  });

  it.each<[string, unknown[], RegExp]>([
    ['pid 0', [0, 1], /pid 0 is outside the range of process ids \(1 to 4194303\)/],
    ['a negative pid', [-1, 1], /pid -1 is outside the range of process ids/],
    ['a text pid with a newline', ['x\ny', 1], /pid "x\\ny" is not an integer/],
    ['a fractional pid', [2.5, 1], /pid 2\.5 is not an integer/],
    ['a text start time', [process.pid, 'now'], /started_at "now" is not a time/],
  ])('an imports row with %s is refused by unfinished() and claims(), in one line', (_what, values, problem) => {
    run('INSERT INTO imports (pair_id, pid, started_at) VALUES (?, ?, ?)', pair.id, ...values);
    const whole = new RegExp(`^read database import of pair p: invalid row: .* \\(restore the database, or delete pairs row ${pair.id} from it \\(an import that never finished\\)`);
    for (const read of [() => store.imports.unfinished(), () => store.pairs.claims('p'), () => store.pairs.claims('other', pair.uuid)]) {
      expect(read).toThrow(whole);
      expect(read).toThrow(problem);
    }
  });

  it('a good imports row is read as it is', () => {
    run('INSERT INTO imports (pair_id, pid, started_at) VALUES (?, ?, ?)', pair.id, process.pid, 5);
    expect(store.imports.unfinished()).toEqual([{ pair, pid: process.pid, startedAt: 5 }]);
    expect(store.pairs.claims('p')).toEqual([{ pair, importPid: process.pid }]);
  });

  it.each<[string, Array<[string, unknown]>, RegExp]>([
    ['a value out of its range', [['scanChunkKiB', '1000000000']], /scanChunkKiB must be a number from 4 to 65536 in plain decimal, got "1000000000"/],
    ['a fraction where a whole number is needed', [['readRetries', '2.5']], /readRetries must be a whole number/],
    ['a zero rate (the scanner would never move)', [['scanRateMiBps', '0']], /scanRateMiBps must be a number from 0\.01 to 100000/],
    ['a flag that is not true or false', [['scanEnabled', '"banana"']], /scanEnabled must be true or false, got "banana"/],
    ['text that is not JSON', [['scanIdleMs', 'fast\u001b[31m']], /setting scanIdleMs is not valid JSON: fast\\x1b\[31m/],
    ['a JSON object', [['scanIdleMs', '{"a":1}']], /setting scanIdleMs is \{"a":1\}, not a number, true or false/],
    ['a blob', [['predictDays', Buffer.from('30')]], /setting predictDays is a blob, not JSON text/],
    ['a text too long to be a setting', [['spareWarnPercent', '9'.repeat(100000)]], /setting spareWarnPercent is 100000 characters long \(at most 64\)/],
    ['latency thresholds out of order', [['latencyWarnMs', '500']], /latency thresholds must satisfy latencyWarnMs <= latencyRemapMs <= latencyCriticalMs \(stored: latencyWarnMs=500, latencyRemapMs=50, latencyCriticalMs=100\)/],
  ])('a config row with %s is refused, in one line, never replaced by the default', (_what, rows, problem) => {
    for (const [key, value] of rows) run('INSERT INTO config (pair_id, key, value) VALUES (?, ?, ?)', pair.id, key, value);
    expect(() => loadConfig(store, pair.id)).toThrow(/^read settings of pair p: the database has a bad row: .* \(restore the database, or delete the bad rows from its config table/);
    expect(() => loadConfig(store, pair.id)).toThrow(problem);
  });

  it('good config rows are read, and a key this version does not know is not', () => {
    for (const [key, value] of [['scanIntervalHours', '0.001'], ['scanEnabled', 'false'], ['latencyRemapMs', '20'], ['laterSetting', '"anything"']]) {
      run('INSERT INTO config (pair_id, key, value) VALUES (?, ?, ?)', pair.id, key, value);
    }
    expect(loadConfig(store, pair.id)).toEqual({ ...DEFAULT_CONFIG, scanIntervalHours: 0.001, scanEnabled: false, latencyRemapMs: 20 });
  });

  it.each<[string, unknown[], string]>([
    ['a negative block', [-5, 50], 'block -5 is outside the device (0 to 262143)'],
    ['a block past the end', [262144, 50], 'block 262144 is outside the device (0 to 262143)'],
    ['a text block', ['x', 50], 'block "x" is not an integer'],
    ['a fractional block', [2.5, 50], 'block 2.5 is not an integer'],
    ['a text latency', [7, 'slow'], 'block 7: latency "slow" is not a number of ms (0 to 2^53-1)'],
    ['a negative latency', [7, -1], 'block 7: latency -1 is not a number of ms (0 to 2^53-1)'],
  ])('a slow_blocks row with %s is left out of the list, with one warning', (_what, [block, latency], problem) => {
    run('INSERT INTO slow_blocks (pair_id, block, latency_ms, time) VALUES (?, ?, ?, 1)', pair.id, 4, 80.5);
    run('INSERT INTO slow_blocks (pair_id, block, latency_ms, time) VALUES (?, ?, ?, 1)', pair.id, block, latency);
    expect(store.health.slowBlocks(pair.id)).toEqual([{ block: 4, latencyMs: 80.5 }]);
    expect(warnings).toEqual([`pair p: ignoring 1 bad slow block row: ${problem}`]);
  });

  it('many bad slow_blocks rows: one warning that counts them, and the good rows', () => {
    for (const block of [-3, -2, -1, 5, 262144, 262145]) run('INSERT INTO slow_blocks (pair_id, block, latency_ms, time) VALUES (?, ?, 30, 1)', pair.id, block);
    expect(store.health.slowBlocks(pair.id)).toEqual([{ block: 5, latencyMs: 30 }]);
    expect(warnings).toEqual(['pair p: ignoring 5 bad slow block rows, the first: block -3 is outside the device (0 to 262143)']);
  });

  it('remap events whose time is not a time are left out of the count and the days, with one warning', () => {
    const now = 1_800_000_000_000;
    const DAY = 86_400_000;
    // On both sides of each day's edge, the first day's start, the end of the window and past it, and the future.
    const good = [now, now - 1, now - DAY + 1, now - DAY, now - 29 * DAY, now - 30 * DAY + 1, now - 30 * DAY, now - 31 * DAY, now + 5, 0.5];
    for (const t of good) store.events.add(pair.id, t, 'remap', 1, 10, 'manual');
    store.events.add(pair.id, now, 'retired', null, 10, null);
    for (const t of [-5, 'yesterday', 1e300]) run("INSERT INTO events (pair_id, time, kind) VALUES (?, ?, 'remap')", pair.id, t);
    expect(store.events.remapCount(pair.id)).toBe(good.length);
    expect(store.events.remapDays(pair.id, now, 30)).toEqual(dailyCounts(good, now, 30));
    expect([...new Set(warnings)]).toEqual(['pair p: ignoring 3 bad remap event rows, the first: time -5 is not a time (ms since the epoch, 0 to 2^53-1)']);
  });

  it('recent() leaves out events of the wrong type or too long, with one warning', () => {
    store.events.add(pair.id, 100, 'scan', null, 3, '{"a":1}');
    run("INSERT INTO events (pair_id, time, kind, detail) VALUES (?, 200, 'scan', ?)", pair.id, 'x'.repeat(70000));
    run('INSERT INTO events (pair_id, time, kind) VALUES (?, 300, ?)', pair.id, Buffer.from('remap'));
    run("INSERT INTO events (pair_id, time, kind, block) VALUES (?, 400, 'remap', 'b')", pair.id);
    expect(store.events.recent(pair.id, 10)).toEqual([{ time: 100, kind: 'scan', block: null, value: 3, detail: '{"a":1}' }]);
    expect(warnings).toEqual([expect.stringMatching(/^pair p: ignoring 3 bad event rows, the first: (detail is 70000 characters long \(at most 65536\)|kind a blob is not text|block "b" is not an integer)$/)]);
  });

  it.each<[string, unknown[], string]>([
    ['a text time', ['yesterday', 1], 'reported_at "yesterday" is not a time (ms since the epoch, 0 to 2^53-1)'],
    ['a time in the future', [1_900_000_000_000, 1], 'reported_at 1900000000000 is more than a day after now (1800000000000)'],
    ['more remap events than there are', [1_700_000_000_000, 1e15], 'remap_events 1000000000000000 is more than the 2 remap events recorded'],
    ['a negative count', [1_700_000_000_000, -1], 'remap_events -1 is not a non-negative integer'],
    ['a text count', [1_700_000_000_000, 'many'], 'remap_events "many" is not a non-negative integer'],
  ])('a report_state row with %s is read as none, with one warning', (_what, [at, seen], problem) => {
    const now = 1_800_000_000_000;
    store.events.add(pair.id, 1, 'remap', 1, 10, 'manual');
    store.events.add(pair.id, 2, 'remap', 2, 11, 'manual');
    run('INSERT INTO report_state (pair_id, reported_at, remap_events) VALUES (?, ?, ?)', pair.id, at, seen);
    expect(loadReportState(store, pair.id, now)).toBeUndefined();
    expect(warnings).toEqual([`pair p: ignoring the stored state of the last report: ${problem}; new remaps are counted since the pair was made`]);
    store.health.putReportState(pair.id, now - 1, 2);
    warnings.length = 0;
    expect(loadReportState(store, pair.id, now)).toEqual({ reportedAt: now - 1, remapEvents: 2 });
    expect(warnings).toEqual([]);
  });

  it('a report made minutes "after now" (the clock set back since, by NTP or a reboot) is still good', () => {
    const now = 1_800_000_000_000;
    store.events.add(pair.id, 1, 'remap', 1, 10, 'manual');
    store.health.putReportState(pair.id, now + 10 * 60 * 1000, 1);
    expect(loadReportState(store, pair.id, now)).toEqual({ reportedAt: now + 10 * 60 * 1000, remapEvents: 1 });
    expect(warnings).toEqual([]);
  });
});
