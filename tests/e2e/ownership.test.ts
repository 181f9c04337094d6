/**
 * Devices are held exclusively, and compared by what they are, not by their
 * path (issue 13, cases 1, 2, 4, 5 and 6 of its "Why"). Each test reproduces
 * a way acknowledged data used to be lost, and checks that the data is there
 * afterwards.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { dropCaches, REMAPFS_BIN, sleep, waitFor } from '../../lib/lab/lab.js';
import { blockContent } from '../fixtures/writer.js';
import type { DiscoveryReport } from '../../lib/discovery/discover.js';
import { match } from '../helpers/match.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;

function metaSeq(dbPath: string, name: string): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT meta_seq FROM pairs WHERE name = ?').pluck().get(name) as number | undefined) ?? 0;
  } finally {
    db.close();
  }
}

/** Writes `content(b)` to blocks [0, count) with O_DIRECT, an fsync after each: every one is acknowledged. */
function writeBlocksDirect(file: string, count: number, content: (b: number) => Buffer): void {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT);
  try {
    for (let b = 0; b < count; b++) {
      fs.writeSync(fd, content(b), 0, BLOCK, b * BLOCK);
      fs.fsyncSync(fd);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function readBlock(file: string, block: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, BLOCK, block * BLOCK);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

function mismatches(file: string, count: number, content: (b: number) => Buffer): number[] {
  dropCaches();
  const bad: number[] = [];
  for (let b = 0; b < count; b++) if (!readBlock(file, b).equals(content(b))) bad.push(b);
  return bad;
}

describe('device ownership', () => {
  const lab = labPerTest();

  it('case 1: a CLI remap racing a daemon start is serialised; no acknowledged write is lost', async () => {
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    lab.ok(['init', 'r', '--main', main, '--spare', spare]);
    const startSeq = metaSeq(lab.dbPath, 'r');
    const sectors = Array.from({ length: 300 }, (_, i) => String(i * 8));
    const cli = spawn(process.execPath, [REMAPFS_BIN, 'remap', 'r', ...sectors], { env: lab.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let cliOut = '';
    cli.stdout.on('data', (d: Buffer) => (cliOut += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (cliOut += d.toString()));
    const cliExit = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    // The CLI is remapping (it holds the devices) when the daemon starts.
    await waitFor('the CLI remap to get going', () => metaSeq(lab.dbPath, 'r') > startSeq + 2 || cli.exitCode !== null, 30000);
    expect(cli.exitCode).toBeNull(); // still remapping as the daemon starts: the race this test is about
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    expect(await cliExit).toBe(0);
    expect(cliOut.match(/remapped to spare block/g)?.length).toBe(300);
    const vfile = path.join(mnt, 'r');
    const content = (b: number) => blockContent(b, 7);
    writeBlocksDirect(vfile, 300, content);
    lab.ok(['unmount', mnt]);
    await d.exited;
    expect(lab.cli(['verify', 'r']).status).toBe(0);
    const status = JSON.parse(lab.ok(['status', 'r', '--json'])) as { remappedBlocks: number };
    expect(status.remappedBlocks).toBe(300);
    await lab.startDaemon(mnt);
    expect(mismatches(vfile, 300, content)).toEqual([]);
  });

  it('case 2: a second database cannot import, init or remap devices another daemon serves', async () => {
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    lab.ok(['init', 'p', '--main', main, '--spare', spare]);
    lab.ok(['remap', 'p', '80']);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'p');
    const content = (b: number) => blockContent(b, 3);
    writeBlocksDirect(vfile, 64, content);

    const other = lab.path('y.db');
    const env = { ...lab.env(), REMAPFS_DB: other, REMAPFS_LOCK_WAIT_MS: '500' };
    const imp = lab.cli(['import', '--main', main, '--spare', spare], { env });
    expect(imp.status).toBe(1);
    expect(imp.stderr.trim().split('\n')).toHaveLength(1);
    expect(imp.stderr).toMatch(/is in use by pid \d+/);
    expect(imp.stderr).not.toMatch(/\n\s+at /);
    const init = lab.cli(['init', 'q', '--main', main, '--spare', spare, '--force'], { env });
    expect(init.status).toBe(1);
    expect(init.stderr).toMatch(/is in use by pid \d+/);
    if (fs.existsSync(other)) {
      const db = new Database(other, { readonly: true });
      try {
        expect(db.prepare('SELECT count(*) FROM pairs').pluck().get()).toBe(0);
      } finally {
        db.close();
      }
    }
    expect(mismatches(vfile, 64, content)).toEqual([]);
    expect(lab.cli(['verify', 'p']).status).toBe(0);
  });

  it('case 4: a crafted spare with the same UUID and a higher sequence never replaces the real one', async () => {
    const dir = lab.mkdir('devs');
    const main = lab.image('main.img', 32 * MiB, dir);
    const spare = lab.image('spare.img', 8 * MiB, dir);
    lab.ok(['init', 'c', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    let d = await lab.startDaemon(mnt);
    const real = (b: number) => blockContent(b, 1);
    writeBlocksDirect(path.join(mnt, 'c'), 4, real);
    lab.ok(['unmount', mnt]);
    await d.exited;

    // Craft: a copy of the spare whose newer table sends block 0 to a spare block holding other data.
    const craftDir = lab.mkdir('craft');
    const crafted = path.join(craftDir, 'crafted.img');
    const mainCopy = lab.path('main-copy.img');
    fs.copyFileSync(spare, crafted);
    fs.copyFileSync(main, mainCopy);
    const z = { ...lab.env(), REMAPFS_DB: lab.path('z.db') };
    const zImport = lab.cli(['import', '--main', mainCopy, '--spare', crafted], { env: z });
    expect(zImport.status).toBe(0);
    const zr = lab.cli(['remap', 'c', '0', '--json'], { env: z });
    expect(zr.status).toBe(0);
    const spareBlock = (JSON.parse(zr.stdout) as { remaps: Array<{ spareBlock: number }> }).remaps[0]?.spareBlock as number;
    const fake = Buffer.alloc(BLOCK, 0x46);
    const cfd = fs.openSync(crafted, 'r+');
    fs.writeSync(cfd, fake, 0, BLOCK, spareBlock * BLOCK);
    fs.closeSync(cfd);
    fs.rmSync(mainCopy);

    // discover --import keeps the pair on its own spare and names the crafted one.
    const r = lab.cli(['discover', '--dir', dir, '--dir', craftDir, '--no-block-devices', '--import', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as DiscoveryReport & { actions: Array<{ action: string }> };
    const p = report.pairs.find((x) => x.name === 'c');
    expect(p?.spare?.path).toBe(fs.realpathSync(spare));
    expect(p?.losers).toEqual([match.object({ role: 'spare', path: fs.realpathSync(crafted), why: match.string(/--accept/) })]);
    expect(report.actions).toEqual([expect.objectContaining({ action: 'up-to-date' })]);

    // Hot-plug: the crafted spare appears in a watched directory while the pair is served, and again at start.
    const watched = lab.mkdir('watched');
    d = await lab.startDaemon(mnt, ['--watch', watched]);
    fs.copyFileSync(crafted, path.join(watched, 'crafted.img'));
    await new Promise((resolve) => setTimeout(resolve, 4000)); // more than one rescan (every 3 s)
    expect(mismatches(path.join(mnt, 'c'), 4, real)).toEqual([]);
    lab.ok(['unmount', mnt]);
    await d.exited;
    d = await lab.startDaemon(mnt, ['--watch', watched]);
    expect(mismatches(path.join(mnt, 'c'), 4, real)).toEqual([]);
    const status = JSON.parse(lab.ok(['status', 'c', '--json'])) as { spare: string };
    expect(status.spare).toBe(fs.realpathSync(spare));
  });

  it('case 5: a loop device over the spare is refused as main, and as an evacuation target; the slots survive', async () => {
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    const spareLoop = lab.attachLoop(spare, { directIo: false, sectorSize: 512 });
    const bad = lab.cli(['init', 'x', '--main', spareLoop, '--spare', spare]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/share storage/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const before = fs.readFileSync(spare);
    expect(before.every((byte) => byte === 0)).toBe(true); // nothing was written

    lab.ok(['init', 'x', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const content = (b: number) => blockContent(b, 5);
    writeBlocksDirect(path.join(mnt, 'x'), 16, content);
    const ev = lab.cli(['evacuate', 'x', '--to', spareLoop, '--mapfile', lab.path('x.map')]);
    expect(ev.status).toBe(1);
    expect(ev.stderr).toMatch(/^remapfs: evacuate \/dev\/loop\d+: shares storage with the spare device of pair x \(/);
    expect(lab.cli(['verify', 'x']).status).toBe(0);
    expect(mismatches(path.join(mnt, 'x'), 16, content)).toEqual([]);
  });

  it('a main or spare with a mounted file system is refused by init in one line naming the device; nothing is written', () => {
    const busyImg = lab.image('busy.img', 32 * MiB);
    const busy = lab.attachLoop(busyImg, { directIo: false, sectorSize: 512 });
    lab.mkfsExt4(busy);
    lab.mountFs(busy, lab.path('busy-fs'));
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    const hint = `the device is in use: a file system on it is mounted, or another program holds it open exclusively (see "lsblk ${busy}" and "fuser -vm ${busy}")`;
    for (const [role, args] of [['main', ['--main', busy, '--spare', spare]], ['spare', ['--main', main, '--spare', busy]]] as const) {
      const r = lab.cli(['init', 'x', ...args]);
      expect({ role, status: r.status, lines: r.stderr.trim().split('\n') }).toEqual({ role, status: 1, lines: [`remapfs: open ${busy}: EBUSY: resource busy or locked (${hint})`] });
    }
    expect(fs.existsSync(lab.dbPath)).toBe(false); // the database the refused init made is removed again
    expect(fs.readFileSync(spare).every((byte) => byte === 0)).toBe(true);
    expect(fs.readFileSync(main).every((byte) => byte === 0)).toBe(true);
  });

  it('SIGINT while init writes a slow spare: init finishes the pair (row, slots, label), says so, and exits 130', async () => {
    const main = lab.image('main.img', 32 * MiB);
    const sim = lab.mkdir('sim');
    await lab.startSimulator(lab.image('spare.img', 8 * MiB), sim, ['--slow', '0-16383', '--delay-ms', '150']); // every request waits
    const child = spawn(process.execPath, [REMAPFS_BIN, 'init', 'k', '--main', main, '--spare', path.join(sim, 'disk')], { env: lab.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    lab.onCleanup('kill init', () => void child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    await waitFor('init to make its database', () => fs.existsSync(lab.dbPath), 20000);
    await sleep(500); // into the slot writes, each of which waits 150 ms
    expect(child.exitCode).toBeNull();
    child.kill('SIGINT');
    expect(await exit).toEqual([130, null]);
    expect({ out, err: err.trim().split('\n') }).toEqual({ out: '', err: [expect.stringMatching(/^remapfs: init k: made the pair \(uuid [0-9a-f-]{36}\); then stopped by SIGINT$/)] });
    // The pair is whole: its row, five valid slots, and the main's label (discovery finds the pair by it).
    lab.ok(['fault', sim, 'clear', '--slow']);
    expect(lab.cli(['verify', 'k']).status).toBe(0);
    const found = JSON.parse(lab.ok(['discover', '--dir', path.dirname(main), '--dir', sim, '--no-block-devices', '--json'])) as DiscoveryReport;
    expect(JSON.stringify(found)).toContain(main);
  });

  it('case 6: concurrent inits of the same devices from two databases: exactly one wins, and label and slots agree', async () => {
    for (let run = 0; run < 8; run++) {
      const main = lab.image(`main${run}.img`, 16 * MiB);
      const spare = lab.image(`spare${run}.img`, 4 * MiB);
      const start = (db: string) => {
        const child = spawn(process.execPath, [REMAPFS_BIN, 'init', `p${run}`, '--main', main, '--spare', spare], {
          env: { ...lab.env(), REMAPFS_DB: lab.path(`${db}${run}.db`) },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (x: Buffer) => (out += x.toString()));
        return new Promise<{ code: number | null; uuid: string }>((resolve) => child.on('exit', (code) => resolve({ code, uuid: out.trim() })));
      };
      const results = await Promise.all([start('a'), start('b')]);
      const winners = results.filter((r) => r.code === 0);
      expect(winners).toHaveLength(1);
      const report = JSON.parse(lab.ok(['discover', '--dir', lab.dir, '--no-block-devices', '--json'])) as DiscoveryReport;
      const found = report.pairs.find((p) => p.name === `p${run}`);
      expect(found).toMatchObject({ uuid: winners[0]?.uuid, status: 'complete' });
      expect(found?.main?.path).toBe(fs.realpathSync(main));
      fs.rmSync(main);
      fs.rmSync(spare);
    }
  });
});
