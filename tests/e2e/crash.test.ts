/**
 * Crash safety: a writer writes numbered blocks with fdatasync and logs each
 * acknowledged one while the main device has bad sectors (so remaps happen
 * all the time); the daemon is killed with SIGKILL at random moments. After
 * every restart each acknowledged block reads back exactly, and the metadata
 * is consistent.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { checkTree, type DaemonHandle, sleep, waitFor, writeRandomTree } from '../../lib/lab/lab.js';
import { loopBackingFile } from '../../lib/block/loop.js';
import { blockContent, writeOrder } from '../fixtures/writer.js';
import { fileURLToPath } from 'url';
import { expectedServedBy, servedBy } from '../helpers/transport.js';
import type { PairStatus } from '../../lib/pair/ops.js';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const MiB = 1024 * 1024;
const BLOCKS = 4096; // the first 16 MiB of the device
const ROUNDS = 6;

describe('crash safety', () => {
  const lab = labPerTest();

  it(`loses no acknowledged write and no remap across ${ROUNDS} kill -9 of the daemon`, async () => {
    const image = lab.image('main.img', 64 * MiB);
    const spare = lab.image('spare.img', 16 * MiB);
    const bad: number[] = [];
    for (let i = 0; i < 400; i++) bad.push((i * 7919 + 3) % (BLOCKS * 8));
    const simMnt = lab.mkdir('sim');
    await lab.startSimulator(image, simMnt, ['--bad', bad.join(',')]);
    lab.ok(['init', 'c', '--main', path.join(simMnt, 'disk'), '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    const vfile = path.join(mnt, 'c');
    const ackLog = lab.path('acks.log');
    fs.writeFileSync(ackLog, '');
    const writer = path.resolve(HERE_DIR, '../fixtures/writer.js');
    /** block -> generations that may be on disk (the last acked one, plus a newer one in flight at the kill). */
    const expected = new Map<number, Set<number>>();
    let seedRandom = 12345;
    const rnd = () => (seedRandom = (Math.imul(seedRandom, 1103515245) + 12345) >>> 0) / 0x100000000;

    for (let round = 1; round <= ROUNDS; round++) {
      const daemon = await lab.startDaemon(mnt);
      // After each restart: everything acknowledged so far reads back exactly.
      verifyAcked(vfile, expected);
      expect(lab.cli(['verify', 'c']).status).toBe(0);

      const child = spawn(process.execPath, [writer, vfile, ackLog, String(round), String(BLOCKS), String(round * 7)], { stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      // The kill lands after this round's first acknowledged write (a slow start must not make an empty round).
      const roundTag = ` ${round}\n`;
      await waitFor(`round ${round}'s first acknowledged write`, () => fs.readFileSync(ackLog, 'utf8').includes(roundTag), 60000);
      await sleep(Math.floor(rnd() * 1500));
      await lab.killDaemon(daemon);
      await exited;
      lab.ok(['unmount', mnt]); // clears the mount the dead daemon left behind

      // What the writer acknowledged in this round; the block after the last ack may or may not have landed.
      const acked = fs.readFileSync(ackLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]);
      const thisRound = acked.filter(([, g]) => g === round);
      expect(thisRound.length).toBeGreaterThan(0);
      expect(thisRound.length).toBeLessThan(BLOCKS); // the kill came while the writer was still writing
      for (const [block, gen] of thisRound) expected.set(block, new Set([gen]));
      const order = writeOrder(BLOCKS, round * 7);
      const inFlight = order[thisRound.length];
      // A block never acknowledged before may hold anything, or be unreadable (a bad sector never written): not checked.
      const before = inFlight !== undefined ? expected.get(inFlight) : undefined;
      if (inFlight !== undefined && before) expected.set(inFlight, new Set([...before, round]));
    }
    await lab.startDaemon(mnt);
    verifyAcked(vfile, expected);
    expect(lab.cli(['verify', 'c']).status).toBe(0);
    const status = JSON.parse(lab.ok(['status', 'c', '--json'])) as PairStatus;
    expect(status.remapsByReason['write-error'] ?? 0).toBeGreaterThan(20);
    expect(servedBy(status.negotiated)).toEqual(expectedServedBy()); // the io model and transport this project asks for
  });
});

describe('recovering from a daemon crash with a file system on top', () => {
  const lab = labPerTest();
  /** A pair (spare a quarter of main) served by a daemon, with a loop device on its file. */
  async function servedOnLoop(name: string, mainBytes: number): Promise<{ mnt: string; daemon: DaemonHandle; loop: string }> {
    lab.ok(['init', name, '--main', lab.image('main.img', mainBytes), '--spare', lab.image('spare.img', mainBytes / 4)]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt);
    return { mnt, daemon, loop: lab.attachLoop(path.join(mnt, name)) };
  }

  it('remapfs recover unmounts, detaches and clears; after a restart fsck is clean and synced files are intact', async () => {
    const { mnt, daemon, loop } = await servedOnLoop('r', 64 * MiB);
    lab.mkfsExt4(loop);
    const ext = lab.path('ext');
    lab.mountFs(loop, ext);
    const sums = writeRandomTree(ext, 8 * MiB, 2);
    execFileSync('sync');
    await lab.killDaemon(daemon);

    const dry = lab.cli(['recover', mnt, '--dry-run']);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain(`umount -l ${ext}`);
    expect(dry.stdout).toContain(`losetup -d ${loop}`);
    const r = lab.cli(['recover', mnt]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mnt} `);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${ext} `);
    // Detached (another test may already have taken the same /dev/loopN for a file of its own).
    expect(loopBackingFile(loop)).not.toBe(path.join(mnt, 'r'));

    await lab.startDaemon(mnt);
    const loop2 = lab.attachLoop(path.join(mnt, 'r'));
    const fsck = spawnSync('e2fsck', ['-f', '-y', loop2], { encoding: 'utf8' });
    expect(fsck.status === 0 || fsck.status === 1).toBe(true); // 1: journal replayed or fixed, nothing lost
    lab.mountFs(loop2, ext);
    expect(checkTree(ext, sums)).toEqual([]);
  });

  it('unmount and mount after a crash refuse while loop devices are on its files, naming them and recover; recover then clears all', async () => {
    const { mnt, daemon, loop } = await servedOnLoop('u', 16 * MiB);
    lab.mkfsExt4(loop);
    const ext = lab.path('ext');
    lab.mountFs(loop, ext);
    await lab.killDaemon(daemon);
    const r = lab.cli(['unmount', mnt]);
    expect({ status: r.status, lines: r.stderr.trim().split('\n') }).toEqual({
      status: 1,
      lines: [`remapfs: unmount ${mnt}: its server has died, and loop devices are still attached to its files: ${loop} (on u, mounted at ${ext}) (run "remapfs recover ${mnt}", which unmounts what sits on them, detaches them and clears the mount)`],
    });
    const again = lab.cli(['mount', mnt]);
    expect({ status: again.status, lines: again.stderr.trim().split('\n') }).toEqual({
      status: 1,
      lines: [`remapfs: mount ${mnt}: a dead mount is still there (its server has died) (run "remapfs recover ${mnt}" first)`],
    });
    // Nothing changed: the dead mount, the loop device and the file system on it are still there for recover to find.
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${mnt} `);
    expect(loopBackingFile(loop)).toBe(path.join(mnt, 'u'));
    const rec = lab.cli(['recover', mnt]);
    expect({ status: rec.status, stderr: rec.stderr }).toEqual({ status: 0, stderr: '' });
    expect(rec.stdout).toContain(`running: losetup -d ${loop}`);
    const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    expect([info.includes(` ${mnt} `), info.includes(` ${ext} `)]).toEqual([false, false]);
    expect(loopBackingFile(loop)).not.toBe(path.join(mnt, 'u'));
  });

  it('recover waits for a loop device that is still open to detach, and stops with one line while something holds it', async () => {
    const { mnt, daemon, loop } = await servedOnLoop('h', 16 * MiB);
    const holder = fs.openSync(loop, 'r'); // a user of the loop device that recover does not know about
    try {
      await lab.killDaemon(daemon);
      const r = lab.cli(['recover', mnt]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([
        `remapfs: recover ${mnt}: ${loop} is still attached after 10 s: something still holds it open (find it with "fuser -vm ${loop}", close it, and run recover again)`,
      ]);
    } finally {
      fs.closeSync(holder);
    }
    // Closed: the detach completes, and recover finishes the rest.
    const again = lab.cli(['recover', mnt]);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(loopBackingFile(loop)).not.toBe(path.join(mnt, 'h'));
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mnt} `);
  });
});

function verifyAcked(vfile: string, expected: Map<number, Set<number>>): void {
  const fd = fs.openSync(vfile, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const wrong: string[] = [];
    for (const [block, gens] of expected) {
      fs.readSync(fd, buf, 0, 4096, block * 4096);
      const ok = [...gens].some((g) => buf.equals(blockContent(block, g)));
      if (!ok) wrong.push(`block ${block} (expected generation ${[...gens].join(' or ')}, found "${buf.toString('ascii', 0, 40).split('\n')[0]}")`);
    }
    expect(wrong).toEqual([]);
  } finally {
    fs.closeSync(fd);
  }
}
