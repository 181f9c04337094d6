/** Hardware identity of block devices from sysfs (serial number or WWN), where the kernel shows one. */
import * as fs from 'fs';
import * as path from 'path';
import { majorMinor } from '../block/alias.js';
import { isPathRefusal } from '../block/disk-error.js';

/** "wwid:…" or "serial:…" for a block device path, or undefined (files, loop devices, virtual disks without one). */
export function hardwareId(devicePath: string): string | undefined {
  let name: string;
  try {
    const st = fs.statSync(devicePath);
    if (!st.isBlockDevice()) return undefined;
    const { major, minor } = majorMinor(st.rdev);
    name = path.basename(fs.realpathSync(`/sys/dev/block/${major}:${minor}`));
  } catch (err) {
    // Gone, or not in sysfs: no hardware id.
    if (!isPathRefusal(err)) throw err;
    return undefined;
  }
  const base = `/sys/class/block/${name}`;
  for (const [kind, rel] of [['wwid', 'wwid'], ['wwid', 'device/wwid'], ['serial', 'serial'], ['serial', 'device/serial']] as const) {
    try {
      const v = fs.readFileSync(path.join(base, rel), 'utf8').trim();
      if (v) return `${kind}:${v}`;
    } catch (err) {
      // This attribute is not there: try the next one.
      if (!isPathRefusal(err)) throw err;
    }
  }
  return undefined;
}
