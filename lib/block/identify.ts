/**
 * Device identity (I/O-free apart from stat and /sys reads): what a path
 * really is (a regular file or a block device), a key that is equal for the
 * same node or file, its size, and the storage it reaches (alias.ts), so
 * that two paths over the same bytes are recognised as one device.
 */
import * as fs from 'fs';
import { SECTOR_BYTES } from '../format/layout.js';
import { type Extent, extentsOverlap, majorMinor, resolveExtent } from './alias.js';
import { RemapfsError } from '../errors.js';

export interface DeviceIdentity {
  /** Absolute, symlinks resolved. */
  realPath: string;
  isBlockDevice: boolean;
  /** "dev:ino" for files, "rdev" for block devices: equal means same device node or file. */
  key: string;
  sizeBytes: number;
  /** What it really reaches (loop devices and partitions resolved): use `extentsOverlap` to compare devices. */
  extent: Extent;
}

/** Stats a path as a possible main or spare device; throws a clear error. */
export function identify(path: string): DeviceIdentity {
  let realPath: string;
  let st: fs.Stats;
  try {
    realPath = fs.realpathSync(path);
    st = fs.statSync(realPath);
  } catch (err) {
    throw new RemapfsError('open', path, err, 'check that the path exists');
  }
  if (st.isBlockDevice()) {
    return { realPath, isBlockDevice: true, key: `b${st.rdev}`, sizeBytes: blockDeviceBytes(realPath, st.rdev), extent: extentOf(realPath) };
  }
  if (st.isFile()) {
    return { realPath, isBlockDevice: false, key: `f${st.dev}:${st.ino}`, sizeBytes: st.size, extent: extentOf(realPath) };
  }
  throw new RemapfsError('open', path, 'not a regular file or block device');
}

/**
 * The identity of a regular file that survives renames and moves within its file system and that no copy shares:
 * `ino:<inode>:birth:<birth time in ns>` (0 where the file system keeps no birth time). Undefined for anything else,
 * or when the path does not resolve. The device number is left out: it can change across reboots.
 */
export function fileId(path: string): string | undefined {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
  return st.isFile() ? `ino:${st.ino}:birth:${st.birthtimeNs}` : undefined;
}

function extentOf(realPath: string): Extent {
  try {
    return resolveExtent(realPath);
  } catch (err) {
    throw new RemapfsError('open', realPath, err, 'check that the path exists');
  }
}

/** True when the two devices share a byte of storage (a loop device over a file shares the file's). */
export function sameStorage(a: DeviceIdentity, b: DeviceIdentity): boolean {
  return a.key === b.key || extentsOverlap(a.extent, b.extent);
}

function blockDeviceBytes(path: string, rdev: number): number {
  const { major, minor } = majorMinor(rdev);
  try {
    const sectors = Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
    return sectors * SECTOR_BYTES;
  } catch (err) {
    throw new RemapfsError('size', path, err, 'cannot read the device size from /sys');
  }
}

