/**
 * The store's row readers refuse crafted rows (lib/store/rows.ts, remaps.ts,
 * bad-sectors.ts): list() and the aggregates (counts, byReason, lostSectors)
 * agree on which rows are bad (the rules in JavaScript and in SQL), and each
 * refusal is one line naming the row and the problem. Opening checks the
 * schema before it changes anything; parsers quote files printably.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import { excerpt } from '../../lib/errors.js';
import { parseBadblocks, parseMapfile } from '../../lib/rescue/mapfile.js';
import { type NewPair, type PairRecord, Store } from '../../lib/store/db.js';
import { scanStateProblem } from '../../lib/health/history.js';
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
