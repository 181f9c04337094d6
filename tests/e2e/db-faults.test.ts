/**
 * Database faults: a full disk at init, damaged pages, a database deleted
 * under a running daemon, and settings written through `.remapfs`.
 */
import Database from 'better-sqlite3';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { labPerTest } from '../helpers/lab-hooks.js';
import { type CliResult, waitFor } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;
const B = 4096;

function oneLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^remapfs: /);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at |SqliteError/);
  return lines[0] as string;
}

describe('database faults', () => {
  const lab = labPerTest();

  it('init on a full disk fails with one line and leaves no database behind', () => {
    const full = lab.mkdir('full');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'remapfs-test-full', full]);
    lab.onCleanup(`umount ${full}`, () => void spawnSync('umount', [full], { stdio: 'ignore' }));
    const fd = fs.openSync(path.join(full, 'filler'), 'w');
    try {
      const chunk = Buffer.alloc(B, 1);
      for (;;) fs.writeSync(fd, chunk);
    } catch (err) {
      expect((err as { code?: string }).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    const r = lab.cli(['--db', path.join(full, 'remapfs.db'), 'init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    expect(oneLine(r)).toMatch(/remapfs\.db: .*(full|SQLITE_FULL).*\(free some space/);
    expect(r.status).toBe(1);
    expect(fs.readdirSync(full)).toEqual(['filler']);
  });

  it('verify fails on a damaged index page with a hint to rebuild from the spare; other commands give the hint too', () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const db = new Database(lab.dbPath);
    const pairId = db.prepare('SELECT id FROM pairs').pluck().get() as number;
    const insert = db.prepare("INSERT INTO events (pair_id, time, kind, block, value, detail) VALUES (?, ?, 'remap', ?, ?, 'manual')");
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) insert.run(pairId, 1_700_000_000_000 + i, i, i);
    })();
    const rootPage = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'events_by_pair_time'").pluck().get() as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    expect(lab.cli(['verify', 'p']).status).toBe(0);
    // Garbage over the index's root page (past its header, so the page type still reads as an index page).
    const f = fs.openSync(lab.dbPath, 'r+');
    fs.writeSync(f, Buffer.alloc(pageSize - 16, 0xa5), 0, pageSize - 16, (rootPage - 1) * pageSize + 16);
    fs.closeSync(f);

    const v = lab.cli(['verify', 'p']);
    expect(oneLine(v)).toMatch(/^remapfs: verify .*remapfs\.db: the database is damaged: .*\(move it aside, then rebuild it from the spares with "remapfs import/);
    expect(v.status).toBe(1);
    expect(v.stdout).toBe('');
    const rep = lab.cli(['repair', 'p']);
    expect(oneLine(rep)).toMatch(/^remapfs: repair .*the database is damaged/);
    expect(rep.status).toBe(1);
    // health reads the events through that index: the malformed database gets the same hint.
    const h = lab.cli(['health', 'p']);
    expect(oneLine(h)).toMatch(/database disk image is malformed \(move it aside, then rebuild it from the spares/);
    expect(h.status).not.toBe(0);
  });

  it('a daemon whose database was deleted says so and refuses remaps: the write that needs one fails instead of being acknowledged', async () => {
    const image = lab.image('main.img', 16 * MiB);
    const spare = lab.image('spare.img', 4 * MiB);
    const simMnt = lab.mkdir('sim');
    await lab.startSimulator(image, simMnt);
    lab.ok(['init', 'p', '--main', path.join(simMnt, 'disk'), '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'p');
    const stats = () => JSON.parse(fs.readFileSync(path.join(mnt, '.remapfs', 'p', 'stats'), 'utf8')) as { database: string; remappedBlocks: number };
    expect(stats().database).toBe('ok');
    const fd = fs.openSync(vfile, 'r+');
    try {
      const data = Buffer.alloc(B, 0x11);
      fs.writeSync(fd, data, 0, B, 10 * B);
      fs.fsyncSync(fd);
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + suffix, { force: true });
      await waitFor('the daemon to notice', () => d.output().includes('the database file was deleted while the daemon runs'), 30000);
      expect(stats().database).toMatch(/the database file was deleted; metadata changes refused/);

      // Main refuses block 300 from now on: serving the write would need a remap.
      lab.ok(['fault', simMnt, 'add', `${300 * 8}-${300 * 8 + 7}`]);
      expect(() => fs.writeSync(fd, data, 0, B, 300 * B)).toThrow(/EIO/);
      expect(stats().remappedBlocks).toBe(0);
      // Writes that need no remap go on.
      fs.writeSync(fd, data, 0, B, 20 * B);
      fs.fsyncSync(fd);
      const back = Buffer.alloc(B);
      fs.readSync(fd, back, 0, B, 20 * B);
      expect(back.equals(data)).toBe(true);
      // Settings are metadata too.
      const cfg = spawnSync('bash', ['-c', `printf 'scanIdleMs=7\\n' > '${path.join(mnt, '.remapfs', 'p', 'config')}'`], { encoding: 'utf8' });
      expect(cfg.status).not.toBe(0);
      await waitFor('the refused setting in the log', () => /write database .*remapfs\.db: the database file was deleted/.test(d.output()));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a bad value written to .remapfs/<pair>/config fails the write itself; a good one applies at once', async () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const cfgFile = path.join(mnt, '.remapfs', 'p', 'config');
    const before = fs.readFileSync(cfgFile, 'utf8');
    for (const bad of ['bad', 'scanIdleMs=banana', 'latencyRemapMs=1\\nlatencyWarnMs=500', '{"scanIdleMs": -1}']) {
      const r = spawnSync('bash', ['-c', `printf '${bad}' > '${cfgFile}'`], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/Invalid argument/);
    }
    expect(fs.readFileSync(cfgFile, 'utf8')).toBe(before);
    expect(lab.ok(['config', 'p', 'scanIdleMs'])).toBe('scanIdleMs=100\n');
    // No trailing newline needed: the value applies at write().
    const ok = spawnSync('bash', ['-c', `printf 'scanIdleMs=7' > '${cfgFile}'`], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(cfgFile, 'utf8'))).toMatchObject({ scanIdleMs: 7 });
    expect(lab.ok(['config', 'p', 'scanIdleMs'])).toBe('scanIdleMs=7\n');
  });
});
