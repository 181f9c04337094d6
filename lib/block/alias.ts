/**
 * Which bytes of which storage object a path really reaches, so that two
 * paths that alias each other are caught whatever they are called.
 *
 * A path resolves to an extent: a base object (a regular file's dev:ino, or a
 * whole disk's rdev) and a byte range in it. A loop device reaches its backing
 * file (sysfs loop/backing_file, from loop/offset for loop/sizelimit bytes),
 * a partition reaches its disk (from `start`), and a file or a whole disk
 * reaches itself. Resolution follows at most MAX_DEPTH levels (a loop device
 * over a partition of a loop device over a file). Two paths alias when their
 * extents share a byte.
 *
 * `chain` lists every path met on the way, outermost first: whoever writes to
 * the outermost locks all of them (device-lock.ts), so a loop device over a
 * pair's image and the image itself take the same lock.
 *
 * Everything here only reads sysfs and stats; nothing is opened for writing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { SECTOR_BYTES } from '../format/layout.js';

const MAX_DEPTH = 8;

export interface Extent {
  /** Identity of the base object: "f<dev>:<ino>" for a file, "b<major>:<minor>" for a whole disk. */
  baseKey: string;
  startByte: number;
  /** Exclusive; Infinity when the range runs to the end of the base. */
  endByte: number;
  /** Real paths met while resolving, outermost first (the path itself, then backing files and disks). */
  chain: string[];
}

/** Linux's dev_t split, as glibc's major()/minor() do it. */
export function majorMinor(rdev: number): { major: number; minor: number } {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
  return { major, minor };
}

function readSys(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function sysNumber(file: string): number {
  const v = Number(readSys(file) ?? '0');
  return Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** Resolves a path to the extent it reaches; throws (ENOENT and the like) when it cannot be stat'ed. */
export function resolveExtent(p: string): Extent {
  const chain: string[] = [];
  let current = fs.realpathSync(p);
  let startByte = 0;
  let endByte = Infinity;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    chain.push(current);
    const st = fs.statSync(current);
    if (!st.isBlockDevice()) return { baseKey: `f${st.dev}:${st.ino}`, startByte, endByte, chain };
    const { major, minor } = majorMinor(st.rdev);
    let sysDir: string;
    try {
      sysDir = fs.realpathSync(`/sys/dev/block/${major}:${minor}`);
    } catch {
      return { baseKey: `b${major}:${minor}`, startByte, endByte, chain };
    }
    let shift = 0;
    let limit = Infinity;
    let next: string | undefined;
    if (fs.existsSync(path.join(sysDir, 'partition'))) {
      shift = sysNumber(path.join(sysDir, 'start')) * SECTOR_BYTES;
      limit = sysNumber(path.join(sysDir, 'size')) * SECTOR_BYTES;
      const disk = path.basename(path.dirname(sysDir));
      next = `/dev/${disk}`;
    } else {
      const backing = readSys(path.join(sysDir, 'loop', 'backing_file'));
      if (!backing) return { baseKey: `b${major}:${minor}`, startByte, endByte, chain };
      shift = sysNumber(path.join(sysDir, 'loop', 'offset'));
      const sizeLimit = sysNumber(path.join(sysDir, 'loop', 'sizelimit'));
      limit = sizeLimit > 0 ? sizeLimit : Infinity;
      next = backing.replace(/ \(deleted\)$/, '');
    }
    // Narrow [startByte, endByte) of this level to the next level's coordinates.
    const length = Math.min(endByte, limit) - Math.min(startByte, limit);
    startByte = shift + Math.min(startByte, limit);
    endByte = startByte + length;
    try {
      current = fs.realpathSync(next);
    } catch {
      // The backing file was deleted or is not reachable from here: the device is its own base.
      return { baseKey: `b${major}:${minor}`, startByte: 0, endByte: Infinity, chain };
    }
  }
  return { baseKey: `deep:${chain[0]}`, startByte, endByte, chain };
}

/** True when the two extents share at least one byte. */
export function extentsOverlap(a: Extent, b: Extent): boolean {
  return a.baseKey === b.baseKey && a.startByte < b.endByte && b.startByte < a.endByte;
}

/** Resolves and compares two paths; a path that cannot be resolved aliases nothing. */
export function pathsAlias(a: string, b: string): boolean {
  try {
    return extentsOverlap(resolveExtent(a), resolveExtent(b));
  } catch {
    return false;
  }
}
