/**
 * The daemon's loop devices: putting a served pair's file on one (--attach),
 * and, at every stop, detaching those linked as /dev/remapfs/<pair> over its
 * files (from --attach or "remapfs attach"). See attach.ts for the devices
 * themselves.
 */
import * as path from 'path';
import { RemapfsError } from '../errors.js';
import { loopBackingFile } from '../block/loop.js';
import { attachPair, describeDetach, detachPair, linkPath, loopDeviceUser, readLink } from './attach.js';

/** Puts a served pair on a loop device; a failure is logged, and the pair stays served. */
export async function attachLoop(mountpoint: string, name: string, blockSizeBytes: number, log: (line: string) => void): Promise<void> {
  try {
    const dev = await attachPair(name, path.join(mountpoint, name), blockSizeBytes);
    log(`remapfs: ${name}: attached as ${linkPath(name)} (${dev})`);
  } catch (err) {
    log(`remapfs: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The pairs among `names` whose link /dev/remapfs/<pair> names a loop device on their file in the mount. */
function linkedLoops(mountpoint: string, names: Iterable<string>): Array<{ name: string; dev: string }> {
  const out: Array<{ name: string; dev: string }> = [];
  for (const name of new Set(names)) {
    const dev = readLink(linkPath(name));
    if (dev === undefined) continue;
    if (loopBackingFile(dev) === path.join(mountpoint, name)) out.push({ name, dev });
  }
  return out;
}

/** Detaches the linked loop devices; unless forced, refuses (and detaches none) while one is in use. */
export async function detachLoops(mountpoint: string, names: Iterable<string>, force: boolean, log: (line: string) => void): Promise<void> {
  const loops = linkedLoops(mountpoint, names);
  if (!force) {
    for (const { name, dev } of loops) {
      const user = loopDeviceUser(dev);
      if (user) throw new RemapfsError('stop', mountpoint, `${dev} (${linkPath(name)}) is ${user}`, 'unmount it first, or send the signal again to force');
    }
  }
  for (const { name, dev } of loops) {
    try {
      const user = loopDeviceUser(dev);
      const d = await detachPair(name, path.join(mountpoint, name), force);
      log(`remapfs: ${name}: ${d ? describeDetach(d, user) : `${dev} was detached already`}; removed ${linkPath(name)}`);
    } catch (err) {
      if (!force) throw err;
      log(`remapfs: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
