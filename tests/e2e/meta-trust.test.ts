/**
 * Metadata is untrusted input (issue 13, item 2, and case 3 of "Why"):
 * crafted slots with correct CRCs (an entry inside a slot, duplicate spare
 * or main blocks, bad names, a sequence of 2^53, a wrong spare size) are
 * refused by `import` with one line, never adopted when a pair is opened,
 * and a crafted database row stops the pair from opening. The user's
 * acknowledged writes survive all of it.
 */
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import type { VerifyReport } from '../../lib/meta/verify.js';
import { spareLayout } from '../../lib/format/layout.js';
import { Store } from '../../lib/store/db.js';
import { currentTable, writeRawSlots } from '../helpers/craft.js';
import { labPerTest } from '../helpers/lab-hooks.js';
import { poolBlockAt } from '../helpers/pool.js';
import { match } from '../helpers/match.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;
const MAIN_BYTES = 8 * MiB;
const SPARE_BYTES = MiB;
const LAYOUT = spareLayout(SPARE_BYTES, BLOCK);
const SLOT1 = LAYOUT.slots[1]?.startBlock as number;

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe('metadata is untrusted input', () => {
  const lab = labPerTest();

  /** A labelled pair with two remapped blocks (0 and 100), made through the CLI. */
  function makePair(): { main: string; spare: string; entries: SlotEntry[] } {
    const main = lab.image('main.img', MAIN_BYTES);
    const spare = lab.image('spare.img', SPARE_BYTES);
    lab.ok(['init', 'm', '--main', main, '--spare', spare]);
    lab.ok(['remap', 'm', '0', '800']);
    return { main, spare, entries: currentTable(spare).entries };
  }

  function freeSpare(entries: readonly SlotEntry[]): number {
    const used = new Set(entries.map((e) => e.spareBlock));
    for (let n = 0; ; n++) if (!used.has(poolBlockAt(LAYOUT, n))) return poolBlockAt(LAYOUT, n);
  }

  const remapAt = (mainBlock: number, spareBlock: number): SlotEntry => ({ mainBlock, spareBlock, createdAt: 1700000000000, reason: 'manual', state: 'remapped', lostSectors: 0 });

  it('import refuses crafted tables and bad names, each with one line', () => {
    const { spare, main, entries } = makePair();
    const pristine = fs.readFileSync(spare);
    const { header } = currentTable(spare);
    const cases: Array<[string, Partial<typeof header>, SlotEntry[], RegExp]> = [
      ['an entry inside slot 1', {}, [...entries, remapAt(50, SLOT1)], /spare block \d+ lies in metadata slot 1/],
      ['a spare block used twice', {}, [...entries, remapAt(51, entries[0]?.spareBlock as number)], /spare block \d+ is used twice/],
      ['a main block with two entries', {}, [...entries, remapAt(entries[0]?.mainBlock as number, freeSpare(entries))], /main block \d+ has two entries/],
      ['sequence 2^53', { sequence: 2 ** 53 }, entries, /sequence number 9007199254740992 is out of range/],
      ['a wrong spare size', { spareBytes: SPARE_BYTES + 512 }, entries, /header says the spare has 1049088 bytes/],
      ...['a/b', '../x', '.remapfs', '', 'x\ny'].map((name): [string, Partial<typeof header>, SlotEntry[], RegExp] => [`name ${JSON.stringify(name)}`, { name }, entries, /invalid pair name/]),
    ];
    for (const [what, change, table, reason] of cases) {
      fs.writeFileSync(spare, pristine);
      writeRawSlots(spare, { ...header, ...change, sequence: change.sequence ?? header.sequence + 5 }, table);
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + suffix, { force: true });
      const r = lab.cli(['import', '--spare', spare, '--main', main]);
      expect({ what, status: r.status }).toEqual({ what, status: 1 });
      const line = oneLine(r.stderr);
      expect(line).toMatch(/^remapfs: import .*: no valid remapfs metadata slot found/);
      expect({ what, line }).toEqual({ what, line: match.string(reason) });
      expect(lab.cli(['list', '--json']).stdout).not.toContain('"m"');
    }
    // The real table still imports.
    fs.writeFileSync(spare, pristine);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + suffix, { force: true });
    expect(lab.cli(['import', '--spare', spare, '--main', main]).status).toBe(0);
  });

  it('opening never adopts a crafted copy: the database table is used and the slots are rewritten', () => {
    const { spare, entries } = makePair();
    const pristine = fs.readFileSync(spare);
    const { header } = currentTable(spare);
    const cases: Array<[string, Partial<typeof header>, SlotEntry[], RegExp]> = [
      ['a spare block used twice', {}, [...entries, remapAt(51, entries[0]?.spareBlock as number)], /is used twice/],
      ['a main block with two entries', {}, [...entries, remapAt(entries[0]?.mainBlock as number, freeSpare(entries))], /has two entries/],
      ['an entry inside slot 1', {}, [...entries, remapAt(50, SLOT1)], /lies in metadata slot 1/],
      ['sequence 2^53', { sequence: 2 ** 53 }, entries, /sequence number .* out of range/],
      ['a wrong spare size', { spareBytes: SPARE_BYTES + 512 }, entries, /header says the spare has/],
    ];
    for (const [k, [what, change, table, reason]] of cases.entries()) {
      fs.writeFileSync(spare, pristine);
      // Above the database's sequence, so that only the rules can refuse the crafted copies.
      const dbSeq = (JSON.parse(lab.cli(['verify', 'm', '--json']).stdout) as VerifyReport).database.sequence;
      writeRawSlots(spare, { ...header, ...change, sequence: change.sequence ?? dbSeq + 5 }, table);
      const v = lab.cli(['verify', 'm', '--json']);
      const report = JSON.parse(v.stdout) as VerifyReport;
      expect({ what, status: v.status, source: report.source, valid: report.slots.map((s) => s.valid) }).toEqual({ what, status: 1, source: 'database', valid: [false, false, false, false, false] });
      for (const s of report.slots) expect({ what, reason: s.reason }).toEqual({ what, reason: match.string(reason) });
      expect(lab.cli(['repair', 'm']).status).toBe(0);
      const after = JSON.parse(lab.ok(['verify', 'm', '--json'])) as VerifyReport;
      expect(after.consistent).toBe(true);
      // The sequence went on from the highest seen below 2^53, and keeps increasing.
      expect(after.sequence).toBeLessThan(2 ** 53 - 1);
      lab.ok(['remap', 'm', String(8 * (200 + k))]);
      expect((JSON.parse(lab.ok(['verify', 'm', '--json'])) as VerifyReport).sequence).toBe(after.sequence + 1);
    }
  });

  it('a user write to a block whose crafted entry points into a slot is not lost (case 3)', async () => {
    const { spare, entries } = makePair();
    const { header } = currentTable(spare);
    // Virtual block 50 "remapped" onto slot 1's first block, with a higher sequence and correct CRCs.
    writeRawSlots(spare, { ...header, sequence: header.sequence + 5 }, [...entries, remapAt(50, SLOT1)]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'm');
    const data = crypto.randomBytes(BLOCK);
    const fd = fs.openSync(vfile, 'r+');
    try {
      fs.writeSync(fd, data, 0, BLOCK, 50 * BLOCK);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // A metadata update (a remap through the daemon) rewrites slot headers and pages.
    lab.ok(['remap', 'm', String(8 * 300)]);
    lab.ok(['unmount', mnt]);
    await daemon.exited;
    expect(lab.cli(['verify', 'm']).status).toBe(0);
    // A new mount: nothing of the old one is cached.
    await lab.startDaemon(mnt);
    const back = Buffer.alloc(BLOCK);
    const rfd = fs.openSync(vfile, 'r');
    try {
      fs.readSync(rfd, back, 0, BLOCK, 50 * BLOCK);
    } finally {
      fs.closeSync(rfd);
    }
    expect(back.equals(data)).toBe(true);
    expect(daemon.output()).toMatch(/slot 0 rewritten \(invalid: entry \d+: spare block \d+ lies in metadata slot 1\)/);
    const status = JSON.parse(lab.ok(['status', 'm', '--json', '--entries'])) as { entries: Array<{ mainBlock: number | null; spareBlock: number | null }> };
    expect(status.entries.some((e) => e.mainBlock === 50)).toBe(false);
  });

  it('a crafted database row (a spare block inside a slot) stops the pair from opening, with one line', async () => {
    makePair();
    const store = Store.open(lab.dbPath, { create: false });
    try {
      const pair = store.pairs.get('m');
      const row = pair && store.remaps.list(pair.id).find((r) => r.mainBlock === 0);
      if (!pair || !row) throw new Error('pair m has no remap of main block 0');
      store.transaction(() => store.remaps.put(pair.id, { ...row, spareBlock: SLOT1 }));
    } finally {
      store.close();
    }
    const r = lab.cli(['remap', 'm', '16']);
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^remapfs: open metadata of pair m: the database's remap table is invalid: entry \d+: spare block \d+ lies in metadata slot 1; slot \d holds a valid table at sequence \d+ \(/);
    // The only pair cannot be opened, so the daemon says why in one line and gives up.
    const mnt = lab.mkdir('mnt');
    await expect(lab.startDaemon(mnt)).rejects.toThrow(/skipping pair m: open metadata of pair m: the database's remap table is invalid: entry \d+: spare block \d+ lies in metadata slot 1/);
  });

  it('a pair whose import has not finished is named as such by every command, with one line and what to do', () => {
    const { spare } = makePair();
    const before = fs.readFileSync(spare);
    // An interrupted import: its imports row stays (the process that began it is gone: a child that exited).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const store = Store.open(lab.dbPath, { create: false });
    try {
      const pair = store.pairs.get('m');
      if (!pair) throw new Error('no pair m');
      store.transaction(() => store.imports.begin(pair.id, gone, Date.now()));
    } finally {
      store.close();
    }
    for (const args of [['verify', 'm'], ['status', 'm'], ['remap', 'm', '16']]) {
      const r = lab.cli(args);
      expect(r.status).toBe(1);
      expect(oneLine(r.stderr)).toBe(
        `remapfs: find pair m: its import has not finished (begun by process ${gone}, which is gone) (run "remapfs import" for its devices again: it removes the interrupted import first)`,
      );
    }
    // Nothing was written to the devices.
    expect(fs.readFileSync(spare).equals(before)).toBe(true);
  });
});
