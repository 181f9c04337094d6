/** Loop devices as the kernel reports them in sysfs. */
import * as fs from 'fs';
import * as path from 'path';

/** The file that backs loop device `dev` (`/dev/loop3` or `loop3`), or undefined when it is not attached. */
export function loopBackingFile(dev: string): string | undefined {
  try {
    return fs.readFileSync(`/sys/class/block/${path.basename(dev)}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
  } catch {
    return undefined;
  }
}
