/**
 * Discovery end to end: pairs found by UUID after a move and a rename, on real
 * loop block devices, a wrong main refused, the JSON schema, and hot-plug.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { checkTree, dropCaches, waitFor, writeRandomTree } from '../../lib/lab/lab.js';
import type { DiscoveryReport } from '../../lib/discovery/discover.js';
import Database from 'better-sqlite3';

const MiB = 1024 * 1024;

describe('discovery', () => {
  const lab = labPerTest();

  /** A pair with ext4 files and remaps, unmounted again; returns the sums. */
  async function pairWithFiles(name: string, main: string, spare: string): Promise<Map<string, string>> {
    lab.ok(['init', name, '--main', main, '--spare', spare]);
    const mnt = lab.mkdir(`mnt-${name}`);
    const d = await lab.startDaemon(mnt);
    const loop = lab.attachLoop(path.join(mnt, name));
    lab.mkfsExt4(loop);
    const ext = lab.path(`ext-${name}`);
    lab.mountFs(loop, ext);
    const sums = writeRandomTree(ext, 12 * MiB, 4);
    execFileSync('sync');
    lab.ok(['remap', name, '1000', '2000', '30000']);
    lab.umountFs(ext);
    execFileSync('losetup', ['-d', loop]);
    lab.ok(['unmount', mnt]);
    await d.exited;
    return sums;
  }

  async function checkServed(name: string, sums: Map<string, string>): Promise<void> {
    const mnt = lab.mkdir(`mnt2-${name}`);
    await lab.startDaemon(mnt);
    const loop = lab.attachLoop(path.join(mnt, name));
    dropCaches();
    const ext = lab.path(`ext2-${name}`);
    lab.mountFs(loop, ext);
    expect(checkTree(ext, sums)).toEqual([]);
  }

  it('finds a moved and renamed pair, imports it into a fresh database, and serves the same data; --json has the documented shape', async () => {
    const sums = await pairWithFiles('mv', lab.image('main.img', 64 * MiB), lab.image('spare.img', 16 * MiB));
    const elsewhere = lab.mkdir('elsewhere');
    fs.renameSync(lab.path('main.img'), path.join(elsewhere, 'renamed-a.img'));
    fs.renameSync(lab.path('spare.img'), path.join(elsewhere, 'renamed-b.img'));
    fs.writeFileSync(path.join(elsewhere, 'unrelated.txt'), 'hello');
    for (const f of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + f, { force: true });

    const r = lab.cli(['discover', '--dir', elsewhere, '--no-block-devices', '--json', '--import']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as DiscoveryReport & { actions: Array<{ name: string; action: string }> };
    expect(report.version).toBe(1);
    expect(report.scanned.files).toBe(3);
    expect(report.pairs).toHaveLength(1);
    const p = report.pairs[0];
    expect(p).toMatchObject({ name: 'mv', status: 'complete', conflict: null, known: null, losers: [] });
    expect(p?.main?.path).toBe(path.join(elsewhere, 'renamed-a.img'));
    expect(p?.spare).toMatchObject({ path: path.join(elsewhere, 'renamed-b.img'), validSlots: 5 });
    expect(report.actions).toEqual([expect.objectContaining({ name: 'mv', action: 'imported' })]);
    expect(lab.cli(['verify', 'mv']).status).toBe(0);
    await checkServed('mv', sums);
  });

  it('a copy of a known pair\'s spare in a scanned directory: the pair\'s own spare wins when it is scanned too; when it is not, the conflict says it was not scanned', () => {
    const main = lab.image('main.img', 16 * MiB);
    const spare = lab.image('spare.img', 4 * MiB);
    lab.ok(['init', 'cp', '--main', main, '--spare', spare]);
    const copies = lab.mkdir('copies');
    fs.copyFileSync(spare, path.join(copies, 'spare.img'));
    const only = JSON.parse(lab.ok(['discover', '--dir', copies, '--no-block-devices', '--json'])) as DiscoveryReport;
    expect(only.pairs.map((p) => [p.name, p.status, p.conflict])).toEqual([
      ['cp', 'conflict', expect.stringMatching(new RegExp(`^the pair's spare ${spare} is present but was not scanned, and ${path.join(copies, 'spare.img')} claim it: scan it too`))],
    ]);
    const both = JSON.parse(lab.ok(['discover', '--dir', copies, '--dir', path.dirname(spare), '--no-block-devices', '--json'])) as DiscoveryReport;
    expect(both.pairs.map((p) => [p.name, p.status, p.spare?.path, p.losers.map((l) => l.path)])).toEqual([['cp', 'complete', spare, [path.join(copies, 'spare.img')]]]);
  });

  it('discovers images attached as loop devices as block devices, pairs and serves them', async () => {
    const main = lab.image('main.img', 64 * MiB);
    const spare = lab.image('spare.img', 16 * MiB);
    const sums = await pairWithFiles('blk', main, spare);
    for (const f of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + f, { force: true });
    const mainLoop = lab.attachLoop(main, { directIo: false, sectorSize: 512 });
    const spareLoop = lab.attachLoop(spare, { directIo: false, sectorSize: 512 });
    const r = lab.cli(['discover', '--json', '--import']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as DiscoveryReport;
    const p = report.pairs.find((x) => x.name === 'blk');
    expect(p).toMatchObject({ status: 'complete' });
    expect(p?.main?.path).toBe(mainLoop);
    expect(p?.spare?.path).toBe(spareLoop);
    const status = JSON.parse(lab.ok(['status', 'blk', '--json'])) as { main: string; spare: string; remappedBlocks: number };
    expect(status).toMatchObject({ main: mainLoop, spare: spareLoop, remappedBlocks: 3 });
    await checkServed('blk', sums);
  });

  it('refuses a wrong main of the same size, and a database that points at one', () => {
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    lab.ok(['init', 'w', '--main', main, '--spare', spare]);
    const other = lab.image('other.img', 32 * MiB);
    fs.writeFileSync(other, crypto.randomBytes(32 * MiB));
    // import with the wrong main, into a fresh database
    const freshEnv = { ...lab.env(), REMAPFS_DB: lab.path('fresh.db') };
    const imp = lab.cli(['import', '--spare', spare, '--main', other], { env: freshEnv });
    expect(imp.status).toBe(1);
    expect(imp.stderr).toMatch(/^remapfs: import .*other\.img: carries no remapfs label, but pair w's main was labelled/);
    expect(fs.existsSync(lab.path('fresh.db'))).toBe(false); // a refused import leaves no database behind
    // a database whose main path now holds another disk: never served with this table
    const before = fs.readFileSync(main);
    fs.copyFileSync(other, main);
    const mnt = lab.mkdir('mnt');
    const m = lab.cli(['mount', mnt]);
    expect(m.status).toBe(1);
    expect(m.stderr).toContain("carries no remapfs label, not this pair's");
    fs.writeFileSync(main, before);
    // a main labelled by another pair is refused at init
    const again = lab.cli(['init', 'w2', '--main', main, '--spare', lab.image('spare2.img', 8 * MiB)]);
    expect(again.status).toBe(1);
  });

  it("refuses a main of the same size that carries another pair's label, at import and at mount", () => {
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    lab.ok(['init', 'w', '--main', main, '--spare', spare]);
    const otherMain = lab.image('x-main.img', 32 * MiB);
    const fd = fs.openSync(otherMain, 'r+');
    fs.writeSync(fd, crypto.randomBytes(4 * MiB), 0, 4 * MiB, 0); // different content too
    fs.closeSync(fd);
    // pair x lives in a database of its own, so a mount of w's database has only w to serve
    const xEnv = { ...lab.env(), REMAPFS_DB: lab.path('x.db') };
    expect(lab.cli(['init', 'x', '--main', otherMain, '--spare', lab.image('x-spare.img', 8 * MiB)], { env: xEnv }).status).toBe(0);
    // import w's spare with x's main, into a fresh database
    const freshEnv = { ...lab.env(), REMAPFS_DB: lab.path('fresh.db') };
    const imp = lab.cli(['import', '--spare', spare, '--main', otherMain], { env: freshEnv });
    expect(imp.status).toBe(1);
    expect(imp.stderr).toMatch(/x-main\.img: carries the label of pair x \(uuid [0-9a-f-]+\), not of pair w/);
    expect(fs.existsSync(lab.path('fresh.db'))).toBe(false); // a refused import leaves no database behind
    // w's main path now holds x's main: the mount refuses rather than serve it with w's table
    const before = fs.readFileSync(main);
    fs.copyFileSync(otherMain, main);
    const m = lab.cli(['mount', lab.mkdir('mnt')]);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(/carries the label of pair x \(uuid [0-9a-f-]+\), not this pair's/);
    fs.writeFileSync(main, before);
  });

  it('hot-plug: a pair copied into a watched directory appears; removing one half takes it away safely', async () => {
    const src = lab.mkdir('src');
    const main = path.join(src, 'm.img');
    const spare = path.join(src, 's.img');
    fs.writeFileSync(main, '');
    fs.truncateSync(main, 32 * MiB);
    fs.writeFileSync(spare, '');
    fs.truncateSync(spare, 8 * MiB);
    const otherDb = lab.path('other.db');
    const made = lab.cli(['init', 'hp', '--main', main, '--spare', spare], { env: { ...lab.env(), REMAPFS_DB: otherDb } });
    expect(made.status).toBe(0);
    const payload = crypto.randomBytes(1 * MiB);
    const fd = fs.openSync(main, 'r+');
    fs.writeSync(fd, payload, 0, payload.length, 4 * MiB);
    fs.closeSync(fd);

    const watch = lab.mkdir('watch');
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt, ['--watch', watch]);
    expect(fs.readdirSync(mnt).filter((f) => !f.startsWith('.'))).toEqual([]);
    fs.copyFileSync(main, path.join(watch, 'm.img'));
    fs.copyFileSync(spare, path.join(watch, 's.img'));
    const t0 = Date.now();
    await waitFor('the virtual file to appear', () => fs.existsSync(path.join(mnt, 'hp')), 10000);
    expect(Date.now() - t0).toBeLessThan(10000);
    const back = Buffer.alloc(payload.length);
    const vfd = fs.openSync(path.join(mnt, 'hp'), 'r');
    fs.readSync(vfd, back, 0, back.length, 4 * MiB);
    expect(back.equals(payload)).toBe(true);
    // Remove one half while the file is open: requests fail with EIO, nothing is written anywhere.
    fs.rmSync(path.join(watch, 's.img'));
    await waitFor('the daemon to notice', () => d.output().includes('a device of the pair disappeared'), 10000);
    expect(() => fs.readSync(vfd, back, 0, 4096, 0)).toThrow(/EIO/);
    fs.closeSync(vfd);
    await waitFor('the file to leave the mount', () => !fs.existsSync(path.join(mnt, 'hp')), 10000);
    // Put it back: it returns.
    fs.copyFileSync(spare, path.join(watch, 's.img'));
    await waitFor('the virtual file to come back', () => fs.existsSync(path.join(mnt, 'hp')), 10000);
    // And a removal with nothing open: gone at once.
    fs.rmSync(path.join(watch, 'm.img'));
    await waitFor('the file to leave the mount', () => !fs.existsSync(path.join(mnt, 'hp')), 10000);
  });

  it('hot-plug: the spare renamed while no daemon ran is followed; a stale copy of a deleted spare is not taken (a write made since would be lost)', async () => {
    const watch = lab.mkdir('watch');
    lab.ok(['init', 'st', '--main', lab.image('m.img', 32 * MiB, watch), '--spare', lab.image('s.img', 8 * MiB, watch)]);
    lab.ok(['remap', 'st', String(100 * 8)]); // block 100 lives on the spare from now on
    const mnt = lab.mkdir('mnt');
    const vfile = path.join(mnt, 'st');
    const writeBlock100 = (data: Buffer): void => {
      const fd = fs.openSync(vfile, fs.constants.O_RDWR | fs.constants.O_DIRECT);
      try {
        fs.writeSync(fd, Buffer.from(data), 0, 4096, 100 * 4096);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    };
    const readBlock100 = (): Buffer => {
      const out = Buffer.alloc(4096);
      const fd = fs.openSync(vfile, 'r');
      try {
        fs.readSync(fd, out, 0, 4096, 100 * 4096);
      } finally {
        fs.closeSync(fd);
      }
      return out;
    };
    // Renamed while no daemon runs: the same file, so it is followed.
    const renamed = path.join(watch, 's-renamed.img');
    fs.renameSync(path.join(watch, 's.img'), renamed);
    let d = await lab.startDaemon(mnt, ['--watch', watch]);
    await waitFor('the pair to be attached with its renamed spare', () => d.output().includes(`st: attached (main ${path.join(watch, 'm.img')}, spare ${renamed})`), 20000);
    const first = crypto.randomBytes(4096);
    writeBlock100(first);
    expect(readBlock100().equals(first)).toBe(true);

    // A copy taken now, a write after it, then the spare deleted: the copy lacks the write and is not taken.
    const copy = path.join(watch, 's-copy.img');
    fs.copyFileSync(renamed, copy);
    const second = crypto.randomBytes(4096);
    writeBlock100(second); // acknowledged: on the spare, not in the copy
    fs.rmSync(renamed);
    await waitFor('the conflict to be logged', () => d.output().includes('st: not attached: '), 20000);
    expect(d.output()).toContain(`remapfs: st: not attached: the pair's spare ${renamed} is gone, and ${copy} hold its table but is another file (a copy lacks what was written since it was taken)`);
    expect(d.output()).not.toContain(`spare ${copy})`);
    expect(fs.existsSync(vfile)).toBe(false);
    lab.ok(['unmount', mnt]);
    await d.exited;
    // Nor after a restart; discover says the same, and --accept is the way to take the copy knowingly.
    d = await lab.startDaemon(mnt, ['--watch', watch]);
    await waitFor('the conflict to be logged again', () => d.output().includes('st: not attached: '), 20000);
    expect(fs.existsSync(vfile)).toBe(false);
    const report = JSON.parse(lab.ok(['discover', '--dir', watch, '--no-block-devices', '--json'])) as DiscoveryReport;
    expect(report.pairs.map((p) => [p.name, p.status])).toEqual([['st', 'conflict']]);
  });

  it('copies of a pair\'s image files are conflicts, whether the originals are gone or elsewhere, and so is a loop device over a copy; --accept (twice) takes them knowingly', () => {
    const dir = lab.mkdir('imgs');
    const main = lab.image('m.img', 16 * MiB, dir);
    const spare = lab.image('s.img', 4 * MiB, dir);
    lab.ok(['init', 'mc', '--main', main, '--spare', spare]);
    const other = lab.mkdir('other');
    const [mainCopy, spareCopy] = [path.join(other, 'm-copy.img'), path.join(other, 's-copy.img')];
    fs.copyFileSync(main, mainCopy);
    const scan = (...extra: string[]) => JSON.parse(lab.ok(['discover', '--dir', other, '--no-block-devices', '--json', ...extra])) as DiscoveryReport & { actions?: Array<{ action: string }> };
    const copyOfMain = (where: string) => `the pair's main ${main} ${where}, and ${mainCopy} carries its label but is another file (a copy lacks what was written since it was taken): if it is the main itself (moved across file systems, or restored), pass --accept ${mainCopy} to use it`;
    // The main copied elsewhere while the original is still there, out of the scan: not taken.
    fs.renameSync(spare, path.join(other, 's.img')); // the spare itself moved (same file): followed
    expect(scan().pairs.map((p) => [p.name, p.status, p.conflict])).toEqual([['mc', 'conflict', copyOfMain('is still there')]]);
    fs.renameSync(path.join(other, 's.img'), spare);
    // Both copied to another file system (as far as identity goes) and the originals gone: two conflicts in one line.
    fs.copyFileSync(spare, spareCopy);
    fs.rmSync(main);
    fs.rmSync(spare);
    const both = scan().pairs[0];
    expect([both?.status, both?.conflict]).toEqual([
      'conflict',
      `the pair's spare ${spare} is gone, and ${spareCopy} hold its table but is another file (a copy lacks what was written since it was taken): if one is the spare itself (moved across file systems, or restored), pass --accept ${spareCopy} to use it; ${copyOfMain('is gone')}`,
    ]);
    // A loop device over the spare's copy is no better than the copy.
    // (the block devices only: a loop device over a file that is scanned anyway is left out)
    const loop = lab.attachLoop(spareCopy, { directIo: false, sectorSize: 512 });
    const viaLoop = (JSON.parse(lab.ok(['discover', '--dir', lab.mkdir('none'), '--json'])) as DiscoveryReport).pairs.find((p) => p.name === 'mc');
    expect([viaLoop?.status, viaLoop?.spare?.path ?? null]).toEqual(['conflict', null]);
    expect(viaLoop?.conflict).toContain(`and ${loop} hold its table but is another file`);
    // Accepting both, knowingly: the pair is complete and its paths (and identities) are updated.
    const accepted = scan('--accept', mainCopy, '--accept', spareCopy, '--import');
    expect(accepted.pairs.map((p) => [p.name, p.status, p.main?.path, p.spare?.path])).toEqual([['mc', 'complete', mainCopy, spareCopy]]);
    expect(accepted.actions?.map((x) => x.action)).toEqual(['paths-updated']);
    expect(scan().pairs.map((p) => [p.status, p.conflict])).toEqual([['complete', null]]);
  });

  it('a recorded identity without a birth time proves nothing: even the renamed file itself needs --accept', () => {
    const dir = lab.mkdir('imgs');
    const spare = lab.image('s.img', 4 * MiB, dir);
    lab.ok(['init', 'bt', '--main', lab.image('m.img', 16 * MiB, dir), '--spare', spare]);
    const db = new Database(lab.dbPath);
    try {
      db.prepare("UPDATE device_ids SET file_id = 'ino:' || ? || ':birth:0' WHERE role = 'spare'").run(String(fs.statSync(spare).ino)); // as on a file system without birth times
    } finally {
      db.close();
    }
    const other = lab.mkdir('other');
    fs.renameSync(spare, path.join(other, 's.img'));
    const r = JSON.parse(lab.ok(['discover', '--dir', dir, '--dir', other, '--no-block-devices', '--json'])) as DiscoveryReport;
    expect(r.pairs.map((p) => [p.name, p.status])).toEqual([['bt', 'conflict']]);
    expect(r.pairs[0]?.conflict).toContain(`${path.join(other, 's.img')} hold its table but is another file`);
  });

  it('hot-plug: a served pair renamed on a file system without birth times is still followed (the daemon holds its files open)', async () => {
    const watch = lab.mkdir('watch');
    const main = lab.image('m.img', 16 * MiB, watch);
    lab.ok(['init', 'hb', '--main', main, '--spare', lab.image('s.img', 4 * MiB, watch)]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt, ['--watch', watch]);
    const db = new Database(lab.dbPath);
    try {
      db.prepare("UPDATE device_ids SET file_id = 'ino:' || ? || ':birth:0' WHERE role = 'main'").run(String(fs.statSync(main).ino)); // as on ext4 with 128-byte inodes
    } finally {
      db.close();
    }
    const renamed = path.join(watch, 'm2.img');
    fs.renameSync(main, renamed);
    await waitFor('the move to be followed', () => d.output().includes(`hb: its devices moved to ${renamed}`), 20000);
    expect(d.output()).not.toContain('hb: not attached');
    expect(fs.existsSync(path.join(mnt, 'hb'))).toBe(true);
  });

  it('hot-plug: a pair whose import fails is tried and logged once, not again while its devices are unchanged, and again after one changes', async () => {
    // This database already has a pair named hp; another database's pair hp shows up in the watched directory.
    lab.ok(['init', 'hp', '--main', lab.image('main.img', 32 * MiB), '--spare', lab.image('spare.img', 8 * MiB)]);
    const watch = lab.mkdir('watch');
    const main = lab.image('m.img', 32 * MiB, watch);
    const spare = lab.image('s.img', 8 * MiB, watch);
    const made = lab.cli(['init', 'hp', '--main', main, '--spare', spare], { env: { ...lab.env(), REMAPFS_DB: lab.path('other.db') } });
    expect(made.status).toBe(0);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt, ['--watch', watch], { ...lab.env(), REMAPFS_DEBUG: '1' });
    const count = (re: RegExp): number => d.output().match(re)?.length ?? 0;
    const esc = (p: string): string => fs.realpathSync(p).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const tried = new RegExp(`hot-plug: trying to import the pair found at ${esc(main)} and ${esc(spare)}$`, 'gm');
    const refused = /cannot import the pair found at .*: import hp: a pair with this name already exists/gm;
    const runs = (): number => count(/discovery run \d+:/gm);
    await waitFor('the first import attempt', () => count(refused) > 0, 30000);
    const after = runs();
    await waitFor('three more rescans', () => runs() >= after + 3, 30000);
    expect(count(tried)).toBe(1);
    expect(count(refused)).toBe(1);
    // The served pair is untouched.
    expect(fs.existsSync(path.join(mnt, 'hp'))).toBe(true);
    // The spare changes (touched): the next rescan tries again, once; the same reason is not logged again.
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(spare, later, later);
    await waitFor('a second attempt', () => count(tried) >= 2, 30000);
    const again = runs();
    await waitFor('two more rescans', () => runs() >= again + 2, 30000);
    expect(count(tried)).toBe(2);
    expect(count(refused)).toBe(1);
  });
});

