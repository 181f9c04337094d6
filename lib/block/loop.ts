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

/** The loop devices (`/dev/loopN`) that `file` backs, as the kernel names it (an absolute path). */
export function loopDevicesBacking(file: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync('/sys/class/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  return names.filter((n) => loopBackingFile(n) === file).map((n) => `/dev/${n}`);
}

/** losetup's arguments to attach `file` to a free loop device and print its name. */
export function loopAttachArgs(file: string, opts: { directIo: boolean; sectorSizeBytes: number }): string[] {
  return [`--direct-io=${opts.directIo ? 'on' : 'off'}`, '--sector-size', String(opts.sectorSizeBytes), '-f', '--show', file];
}
