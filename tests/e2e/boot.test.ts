/**
 * The boot chain on real parts: `remapfs mount --attach` puts the pair on a
 * loop device linked as /dev/remapfs/<pair>; ext4 on it is mounted with the
 * options of the documented fstab line; a clean stop detaches it and removes
 * the link; a second start brings the same data back. Also attach and detach
 * by hand, their refusals, and recover after a crash.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { loopBackingFile, loopDevicesBacking } from '../../lib/block/loop.js';
import { checkTree, detachLoop, waitFor, writeRandomTree } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;
/** The options of the fstab line in docs/boot.md. */
const FSTAB_OPTIONS = 'defaults,nofail,x-systemd.requires=remapfs.service,x-systemd.device-timeout=5min';
const LISTENER = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print(s.recv(4096).decode(), flush=True)',
].join('\n');

function need(cmd: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) throw new Error(`${cmd} is missing`);
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

describe('boot integration', () => {
  const lab = labPerTest();

  /** The pair's loop device through its link, with a cleanup in case the test fails before the daemon detaches it. */
  /** A pair (its images in `dir`, watched when given) served with --attach, ext4 made and mounted on its link. */
  async function ext4OnAttached(watch?: string) {
    const name = `boot-${crypto.randomBytes(4).toString('hex')}`;
    const link = `/dev/remapfs/${name}`;
    lab.ok(['init', name, '--main', lab.image('main.img', 32 * MiB, watch), '--spare', lab.image('spare.img', 4 * MiB, watch)]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt, [...(watch ? ['--watch', watch] : []), '--attach']);
    const dev = attachedDevice(link, path.join(mnt, name));
    lab.mkfsExt4(dev);
    const data = lab.path('data');
    lab.mountFs(link, data);
    return { name, link, mnt, daemon, dev, data };
  }

  function attachedDevice(link: string, file: string): string {
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    const dev = fs.readlinkSync(link);
    expect(dev).toMatch(/^\/dev\/loop\d+$/);
    expect(loopBackingFile(dev)).toBe(file);
    lab.onCleanup(`detach ${dev}`, () => {
      detachLoop(dev, file);
      if (lexists(link) && fs.readlinkSync(link) === dev) fs.rmSync(link);
    });
    return dev;
  }

  function mountWithFstabOptions(link: string, dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-o', FSTAB_OPTIONS, link, dir], { stdio: 'pipe' });
    lab.onCleanup(`umount ${dir}`, () => void spawnSync('umount', [dir], { stdio: 'ignore' }));
  }

  it('mount --attach gives /dev/remapfs/<pair>; ext4 on it survives a stop and a start', async () => {
    // /dev/remapfs is shared by every database on this host: a name of our own.
    const name = `boot-${crypto.randomBytes(4).toString('hex')}`;
    const link = `/dev/remapfs/${name}`;
    lab.ok(['init', name, '--main', lab.image('main.img', 128 * MiB), '--spare', lab.image('spare.img', 32 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const file = path.join(mnt, name);
    const ext = lab.path('data');

    let daemon = await lab.startDaemon(mnt, ['--attach']);
    let dev = attachedDevice(link, file);
    const sys = `/sys/class/block/${path.basename(dev)}`;
    expect(fs.readFileSync(`${sys}/loop/dio`, 'utf8').trim()).toBe('1');
    expect(fs.readFileSync(`${sys}/queue/logical_block_size`, 'utf8').trim()).toBe('4096');
    expect(daemon.output()).toContain(`attached as ${link} (${dev})`);

    lab.mkfsExt4(link);
    mountWithFstabOptions(link, ext);
    const sums = writeRandomTree(ext, 24 * MiB);
    execFileSync('sync', ['-f', ext]); // this file system only: a hung FUSE mount elsewhere must not stall the test

    // Refusals while it is in use: a second attach, a detach, and a clean stop.
    let r = lab.cli(['attach', name]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`remapfs: attach ${name}: already attached as ${dev} (run "remapfs detach ${name}" first)\n`);
    r = lab.cli(['detach', name]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`remapfs: detach ${name}: ${dev} is mounted at ${ext} (umount ${ext} first)\n`);
    r = lab.cli(['unmount', mnt]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^remapfs: stop ${mnt}: ${dev} \\(${link}\\) is mounted at ${ext} \\(unmount it first, or send the signal again to force\\)\\n$`));
    expect(loopBackingFile(dev)).toBe(file);
    expect(checkTree(ext, sums)).toEqual([]);

    // A clean stop (SIGTERM, as systemd sends) detaches the loop device and removes the link.
    lab.umountFs(ext);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(file)).toEqual([]);
    expect(daemon.output()).toContain(`detached ${dev}; removed ${link}`);

    r = lab.cli(['attach', name]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`remapfs: attach ${name}: not served (start "remapfs mount" first)\n`);

    // Start again: the same name, the same data.
    daemon = await lab.startDaemon(mnt, ['--attach']);
    dev = attachedDevice(link, file);
    mountWithFstabOptions(link, ext);
    expect(checkTree(ext, sums)).toEqual([]);
    lab.umountFs(ext);

    // By hand: detach, attach (prints the loop device), and a stop through remapfs unmount.
    r = lab.cli(['detach', name]);
    expect(r.status).toBe(0);
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(file)).toEqual([]);
    r = lab.cli(['detach', name]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`remapfs: detach ${name}: not attached (attach it with "remapfs attach ${name}")\n`);
    r = lab.cli(['attach', name]);
    expect(r.status).toBe(0);
    dev = attachedDevice(link, file);
    expect(r.stdout).toBe(`${dev}\n`);
    mountWithFstabOptions(link, ext);
    expect(checkTree(ext, sums)).toEqual([]);
    lab.umountFs(ext);
    expect(lab.cli(['unmount', mnt]).status).toBe(0);
    expect(await daemon.exited).toBe(0);
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(file)).toEqual([]);
  });

  it('after a crash, recover detaches the loop device and removes the link; a new start attaches again', async () => {
    const name = `boot-${crypto.randomBytes(4).toString('hex')}`;
    const link = `/dev/remapfs/${name}`;
    lab.ok(['init', name, '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const file = path.join(mnt, name);
    const crashed = await lab.startDaemon(mnt, ['--attach']);
    const dev = attachedDevice(link, file);
    await lab.killDaemon(crashed);
    expect(fs.readlinkSync(link)).toBe(dev);
    const r = lab.cli(['recover', mnt]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`running: losetup -d ${dev}\nrunning: rm -f ${link}\n`);
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(file)).toEqual([]);

    const daemon = await lab.startDaemon(mnt, ['--attach']);
    attachedDevice(link, file);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(file)).toEqual([]);
  });

  it('tells systemd it is ready (Type=notify, NotifyAccess=all) once the pair is attached', async () => {
    need('python3');
    need('systemd-notify');
    const name = `boot-${crypto.randomBytes(4).toString('hex')}`;
    const link = `/dev/remapfs/${name}`;
    lab.ok(['init', name, '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    // systemd's end of NOTIFY_SOCKET: a datagram socket; prints the first message.
    const socketPath = lab.path('notify.sock');
    const listener = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    lab.onCleanup('stop the notify listener', () => void listener.kill());
    let heard = '';
    listener.stdout?.on('data', (d: Buffer) => (heard += d.toString()));
    await waitFor('the listener', () => fs.existsSync(socketPath));
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt, ['--attach'], { ...lab.env(), NOTIFY_SOCKET: socketPath });
    await waitFor('READY=1 on the notify socket', () => heard.includes('READY=1'));
    expect(heard.split('\n')).toEqual(expect.arrayContaining(['READY=1', `MAINPID=${daemon.child.pid}`]));
    attachedDevice(link, path.join(mnt, name));
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(lexists(link)).toBe(false);
  });

  it('a SIGTERM refused while ext4 is mounted on the pair stops the daemon on its own once it is unmounted', async () => {
    const { name, link, mnt, daemon, data } = await ext4OnAttached();
    daemon.child.kill('SIGTERM');
    await waitFor('the refusal', () => daemon.output().includes('still serving after SIGTERM'));
    await new Promise((r) => setTimeout(r, 3000)); // past a retry or two: still serving
    expect(daemon.child.exitCode).toBeNull();
    expect(fs.readdirSync(data)).toContain('lost+found');
    lab.umountFs(data);
    expect(await daemon.exited).toBe(0); // no second signal
    expect(lexists(link)).toBe(false);
    expect(loopDevicesBacking(path.join(mnt, name))).toEqual([]);
  });

  it('a forced stop (SIGTERM twice) with ext4 mounted on the pair says its loop device is still open, not that it was detached', async () => {
    const { name, link, daemon, dev, data } = await ext4OnAttached();
    daemon.child.kill('SIGTERM');
    await waitFor('the refusal', () => daemon.output().includes('still serving after SIGTERM'));
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    expect(daemon.output()).toContain(`remapfs: ${name}: ${dev} is still open (mounted at ${data}): the kernel detaches it when it is closed; removed ${link}`);
    expect(daemon.output()).not.toContain(`detached ${dev}`);
    expect(lexists(link)).toBe(false);
    spawnSync('umount', [data], { stdio: 'ignore' }); // its device's file is gone: the umount may report errors
    await waitFor(`${dev} to detach once closed`, () => !loopBackingFile(dev)?.endsWith(`/${name}`), 10000);
  });

  it('a device leaving under a mounted file system (mount --watch): the loop device keeps the file in the mount, and a stop is refused until it is unmounted', async () => {
    const watch = lab.mkdir('watch');
    const { name, link, mnt, daemon, dev, data } = await ext4OnAttached(watch);
    fs.renameSync(path.join(watch, 'main.img'), lab.path('main-away.img'));
    await waitFor('the daemon to notice', () => daemon.output().includes(`${name}: a device of the pair disappeared`), 20000);
    expect(daemon.output()).toContain(`${name}: a device of the pair disappeared; 1 handle(s) still open (a loop device?)`);
    await new Promise((r) => setTimeout(r, 6000)); // a rescan or two
    expect(daemon.output()).not.toContain(`${name}: its last handle closed`);
    expect(loopBackingFile(dev)).toBe(path.join(mnt, name));
    const stop = lab.cli(['unmount', mnt]);
    expect(stop.status).toBe(1);
    expect(stop.stderr).toContain(`${dev} (${link}) is mounted at ${data}`);
    expect(daemon.child.exitCode).toBeNull();
    spawnSync('umount', [data], { stdio: 'ignore' }); // its device fails every request now: errors are expected
    lab.ok(['unmount', mnt]);
    expect(await daemon.exited).toBe(0);
    expect(lexists(link)).toBe(false);
  });

  it('attach refuses a pair the daemon does not serve', () => {
    const name = `boot-${crypto.randomBytes(4).toString('hex')}`;
    lab.ok(['init', name, '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const r = lab.cli(['attach', name]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`remapfs: attach ${name}: not served (start "remapfs mount" first)\n`);
    expect(lexists(`/dev/remapfs/${name}`)).toBe(false);
  });
});
