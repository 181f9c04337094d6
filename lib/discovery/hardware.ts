/** Hardware identity of block devices from sysfs (serial number or WWN), where the kernel shows one. */
import * as fs from 'fs';
import * as path from 'path';

/** "wwid:…" or "serial:…" for a block device path, or undefined (files, loop devices, virtual disks without one). */
export function hardwareId(devicePath: string): string | undefined {
  let name: string;
  try {
    const st = fs.statSync(devicePath);
    if (!st.isBlockDevice()) return undefined;
    const major = Math.floor(st.rdev / 256) & 0xfff;
    const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
    name = path.basename(fs.realpathSync(`/sys/dev/block/${major}:${minor}`));
  } catch {
    return undefined;
  }
  const base = `/sys/class/block/${name}`;
  for (const [kind, rel] of [['wwid', 'wwid'], ['wwid', 'device/wwid'], ['serial', 'serial'], ['serial', 'device/serial']] as const) {
    try {
      const v = fs.readFileSync(path.join(base, rel), 'utf8').trim();
      if (v) return `${kind}:${v}`;
    } catch {
      // not this one
    }
  }
  return undefined;
}
