/**
 * Commands that touch only what is theirs: `recover` leaves an unrelated file
 * system and its loop device alone, and `unmount` never forces a live daemon
 * whose control socket went away.
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { labPerTest } from '../helpers/lab-hooks.js';
import type { CliResult } from '../../lib/lab/lab.js';
import { socketPathFor } from '../../lib/daemon/control.js';

const MiB = 1024 * 1024;

function mountinfo(): string {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8');
}

function expectOneLineRefusal(r: CliResult, word: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^remapfs: /);
  expect(lines[0]).toMatch(word);
  expect(r.status).toBe(1);
}

describe('commands that touch only what is theirs', () => {
  const lab = labPerTest();

  it('recover refuses a directory that was never a remapfs mount: the ext4 on a loop device over a file in it stays mounted and attached', () => {
    const dir = lab.mkdir('not-remapfs');
    const img = lab.image('disk.img', 32 * MiB, dir);
    const loop = lab.attachLoop(img, { directIo: false });
    lab.mkfsExt4(loop);
    const ext = path.join(dir, 'ext');
    lab.mountFs(loop, ext);
    fs.writeFileSync(path.join(ext, 'keep'), 'still here\n');
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);

    for (const args of [['recover', dir, '--dry-run'], ['recover', dir]]) {
      const r = lab.cli(args);
      expectOneLineRefusal(r, /recover .*not-remapfs: no record of a remapfs mount/);
      expect(r.stdout).toBe('');
    }
    expect(mountinfo()).toContain(` ${ext} `);
    expect(spawnSync('losetup', [loop]).status).toBe(0);
    expect(fs.readFileSync(path.join(ext, 'keep'), 'utf8')).toBe('still here\n');
    // The ext4 mount point itself is refused too.
    expectOneLineRefusal(lab.cli(['recover', ext]), /not a remapfs mount \(ext4\)/);
    expect(mountinfo()).toContain(` ${ext} `);
  });

  it('recover refuses the mount of a running daemon', async () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    expectOneLineRefusal(lab.cli(['recover', mnt]), /daemon \(pid \d+\) is running|the mount is alive/);
    expect(mountinfo()).toContain(` ${mnt} `);
    expect(d.child.exitCode).toBeNull();
  });

  it('unmount without the control socket refuses to force a live daemon; the daemon keeps serving an open handle', async () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'p');
    const fd = fs.openSync(vfile, 'r+');
    try {
      const data = Buffer.alloc(4096, 0x5a);
      fs.writeSync(fd, data, 0, data.length, 8192);
      fs.rmSync(socketPathFor(mnt));

      expectOneLineRefusal(lab.cli(['unmount', mnt]), /unmount .*mnt: its daemon \(pid \d+\) is alive but its control socket .* is gone \(refusing to force it/);
      expectOneLineRefusal(lab.cli(['unmount', mnt, '--force']), /is alive but its control socket/);

      expect(mountinfo()).toContain(` ${mnt} `);
      expect(d.child.exitCode).toBeNull();
      const back = Buffer.alloc(4096);
      expect(fs.readSync(fd, back, 0, back.length, 8192)).toBe(4096);
      expect(back.equals(data)).toBe(true);
      expect(fs.readdirSync(mnt)).toContain('p');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('unmount refuses a live server even when the database has no record of it', async () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    fs.rmSync(socketPathFor(mnt));
    const other = lab.path('other.db');
    expectOneLineRefusal(lab.cli(['--db', other, 'unmount', mnt]), /its server is alive but its control socket .* is gone/);
    expect(mountinfo()).toContain(` ${mnt} `);
    expect(d.child.exitCode).toBeNull();
    expect(fs.readdirSync(mnt)).toContain('p');
  });

  it('unmount still clears the mount a killed daemon left behind', async () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const d = await lab.startDaemon(mnt);
    await lab.killDaemon(d);
    const r = lab.cli(['unmount', mnt]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/removed the stale mount/);
    expect(mountinfo()).not.toContain(` ${mnt} `);
  });
});
