/**
 * Pairs rows are untrusted: a row that points a pair's spare at its own main,
 * or at another pair's main, or that holds a block size of 0, is refused with
 * one line before anything is written; the images keep their bytes.
 */
import Database from 'better-sqlite3';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { labPerTest } from '../helpers/lab-hooks.js';
import type { CliResult } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;

function oneLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^remapfs: /);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  return lines[0] as string;
}

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('crafted pairs rows', () => {
  const lab = labPerTest();

  function craft(sql: string, ...args: unknown[]): void {
    const db = new Database(lab.dbPath);
    try {
      db.prepare(sql).run(...args);
    } finally {
      db.close();
    }
  }

  it('a spare path that is the main itself (or a symlink to it): remap refuses, the main keeps its bytes', () => {
    const main = lab.image('main.img', 16 * MiB);
    lab.ok(['init', 'p', '--main', main, '--spare', lab.image('spare.img', 4 * MiB)]);
    fs.writeFileSync(main, crypto.randomBytes(16 * MiB - 4096), { flag: 'r+' });
    const before = sha(main);
    craft('UPDATE pairs SET spare_path = main_path');
    let r = lab.cli(['remap', 'p', '8']);
    expect(oneLine(r)).toMatch(/main .*main\.img and spare .*main\.img are the same device/);
    expect(r.status).not.toBe(0);
    const link = `${lab.dir}/alias.img`;
    fs.symlinkSync(main, link);
    craft('UPDATE pairs SET spare_path = ?', link);
    r = lab.cli(['remap', 'p', '8']);
    expect(oneLine(r)).toMatch(/are the same device/);
    expect(sha(main)).toBe(before);
  });

  it("another pair's spare path pointing at this pair's main: opening it refuses, the main keeps its bytes", () => {
    const main = lab.image('main.img', 16 * MiB);
    lab.ok(['init', 'p', '--main', main, '--spare', lab.image('spare.img', 4 * MiB)]);
    lab.ok(['init', 'q', '--main', lab.image('qmain.img', 16 * MiB), '--spare', lab.image('qspare.img', 16 * MiB)]);
    const before = sha(main);
    craft("UPDATE pairs SET spare_path = ?, spare_bytes = ? WHERE name = 'q'", main, 16 * MiB);
    const r = lab.cli(['remap', 'q', '8']);
    expect(oneLine(r)).toMatch(/main\.img carries the main label of pair p \(uuid [0-9a-f-]+\): it is a main device/);
    expect(r.status).not.toBe(0);
    expect(sha(main)).toBe(before);
  });

  it('a block size of 0, a relative path, a spare too small for its slots: every command names the row and the problem', () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const good = new Database(lab.dbPath).prepare('SELECT * FROM pairs').get() as Record<string, unknown>;
    const cases: [string, unknown[], RegExp][] = [
      ['UPDATE pairs SET block_size = 0', [], /pair p: invalid row: block size must be a power of two from 512 to 65536 bytes, got 0/],
      ["UPDATE pairs SET block_size = 'abc'", [], /pair p: invalid row: block size/],
      ['UPDATE pairs SET main_path = ?', ['main.img'], /pair p: invalid row: the main path "main\.img" is not an absolute path/],
      ['UPDATE pairs SET spare_bytes = 4096', [], /pair p: invalid row: spare size 4096 leaves no spare block/],
      ["UPDATE pairs SET name = 'a/b'", [], /pairs row \d+: invalid row: invalid pair name "a\/b"/],
    ];
    for (const [sql, args, want] of cases) {
      craft(sql, ...args);
      for (const cmd of [['status', 'p'], ['list'], ['verify', 'p']]) {
        const r = lab.cli(cmd);
        expect({ cmd, line: oneLine(r) }).toEqual({ cmd, line: expect.stringMatching(want) as string });
        expect(r.status).toBe(1);
      }
      craft('UPDATE pairs SET name = ?, main_path = ?, block_size = ?, spare_bytes = ?', good.name, good.main_path, good.block_size, good.spare_bytes);
    }
    expect(lab.cli(['status', 'p']).status).toBe(0);
  });
});
