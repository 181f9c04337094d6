/**
 * A served pair as a block device with a stable name: its virtual file on a
 * loop device (direct I/O, sector size min(block size, 4096)), and the link
 * /dev/remapfs/<pair> -> /dev/loopN, for /etc/fstab.
 *
 * Invariants: a pair's file backs at most one loop device (a second attach is
 * refused); the link is made only after the loop device is attached and is
 * removed once it is detached; a loop device with a mounted file system or a
 * holder (dm, md) is not detached unless forced.
 *
 * Child processes run asynchronously: the daemon attaches its own files, and
 * the kernel's open of a FUSE file waits for the daemon's event loop.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loopAttachArgs, loopBackingFile, loopDevicesBacking } from '../block/loop.js';
import { RemapfsError } from '../errors.js';
import { mounts } from './mounts.js';

export const LINK_DIR = '/dev/remapfs';
const LOSETUP_ATTEMPTS = 5;

export function linkPath(name: string): string {
  return path.join(LINK_DIR, name);
}

/** The loop device's logical sector size for a pair: its block size, at most 4096 (the kernel's limit is the page size). */
export function loopSectorSizeBytes(blockSizeBytes: number): number {
  return Math.min(blockSizeBytes, 4096);
}

/**
 * The absolute path a link names, or undefined. udev writes its links relative ("../loop0"): read as they
 * are, they would name /loop0 from a daemon whose working directory is / (systemd's).
 */
export function readLink(p: string): string | undefined {
  try {
    return path.resolve(path.dirname(p), fs.readlinkSync(p));
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message));
      else resolve(stdout.trim());
    });
  });
}

/** Attaches `file` (the pair's served file) and makes the link; returns the loop device. */
export async function attachPair(name: string, file: string, blockSizeBytes: number): Promise<string> {
  const existing = loopDevicesBacking(file);
  if (existing.length) throw new RemapfsError('attach', name, `already attached as ${existing.join(', ')}`, `run "remapfs detach ${name}" first`);
  const link = linkPath(name);
  const linked = readLink(link);
  const linkedBacking = linked === undefined ? undefined : loopBackingFile(linked);
  if (linked !== undefined && linkedBacking !== undefined) {
    throw new RemapfsError('attach', name, `${link} already points to ${linked}, attached to ${linkedBacking}`, 'detach that loop device first');
  }
  const args = loopAttachArgs(file, { directIo: true, sectorSizeBytes: loopSectorSizeBytes(blockSizeBytes) });
  let dev = '';
  for (let attempt = 1; ; attempt++) {
    try {
      dev = await run('losetup', args);
      break;
    } catch (err) {
      // `losetup -f` races with other processes taking the same free device.
      if (attempt >= LOSETUP_ATTEMPTS) throw new RemapfsError('attach', name, err, 'is the loop module loaded?');
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
  try {
    fs.mkdirSync(LINK_DIR, { recursive: true });
    const tmp = `${link}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(dev, tmp);
    fs.renameSync(tmp, link); // replaces a stale link atomically
  } catch (err) {
    await run('losetup', ['-d', dev]).catch(() => undefined);
    throw new RemapfsError('attach', name, err);
  }
  return dev;
}

/** Where `dev` is mounted, or what holds it; undefined when it is free. */
export function loopDeviceUser(dev: string): string | undefined {
  let number: string;
  try {
    number = fs.readFileSync(`/sys/class/block/${path.basename(dev)}/dev`, 'utf8').trim(); // "major:minor"
  } catch {
    return undefined;
  }
  const at = mounts().find((m) => m.device === number);
  if (at) return `mounted at ${at.mountpoint}`;
  let holders: string[] = [];
  try {
    holders = fs.readdirSync(`/sys/class/block/${path.basename(dev)}/holders`);
  } catch {
    // no sysfs entry: not attached
  }
  return holders.length ? `held by ${holders.join(', ')}` : undefined;
}

/** A detach: the device, and whether it is still attached because something holds it open (it goes when closed). */
export interface Detached {
  device: string;
  stillOpen: boolean;
}

/**
 * Detaches the pair's loop device and removes its link. `file` is the pair's
 * served file when known (to find a loop device whose link is gone).
 * Refuses while the device is mounted or held, unless forced. The kernel
 * defers the detach of a device that is still open (LO_FLAGS_AUTOCLEAR):
 * stillOpen says so. Undefined when only a stale link was removed.
 */
export async function detachPair(name: string, file: string | undefined, force = false): Promise<Detached | undefined> {
  const link = linkPath(name);
  const linked = readLink(link);
  let dev: string | undefined;
  if (linked !== undefined && loopBackingFile(linked) !== undefined && (file === undefined || loopBackingFile(linked) === file)) dev = linked;
  else if (file !== undefined) dev = loopDevicesBacking(file)[0];
  if (dev === undefined) {
    if (linked === undefined) throw new RemapfsError('detach', name, 'not attached', `attach it with "remapfs attach ${name}"`);
    fs.rmSync(link, { force: true });
    return undefined;
  }
  const user = loopDeviceUser(dev);
  if (user && !force) throw new RemapfsError('detach', name, `${dev} is ${user}`, user.startsWith('mounted') ? `umount ${user.slice('mounted at '.length)} first` : 'stop its user first');
  const backing = loopBackingFile(dev);
  try {
    await run('losetup', ['-d', dev]);
  } catch (err) {
    // Someone else detached it in between: that is what we wanted.
    if (loopBackingFile(dev) === backing) throw new RemapfsError('detach', name, err);
  }
  if (readLink(link) === dev) fs.rmSync(link, { force: true });
  return { device: dev, stillOpen: backing !== undefined && loopBackingFile(dev) === backing };
}

/** What a detach did, for a log line: `/dev/loop0` detached, or still attached until its user lets go. */
export function describeDetach(d: Detached, user: string | undefined): string {
  if (!d.stillOpen) return `detached ${d.device}`;
  return `${d.device} is still open${user ? ` (${user})` : ''}: the kernel detaches it when it is closed`;
}
