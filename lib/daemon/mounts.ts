/** What the kernel has mounted, from /proc/self/mountinfo. */
import * as fs from 'fs';

export interface MountEntry {
  mountpoint: string;
  fsType: string;
  source: string;
  /** "major:minor" of the mounted file system; a FUSE mount's minor is its /sys/fs/fuse/connections entry. */
  device: string;
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo text (pure). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const device = fields[2];
    const mountpoint = fields[4];
    const fsType = fields[sep + 1];
    const source = fields[sep + 2];
    if (sep < 0 || device === undefined || mountpoint === undefined || fsType === undefined || source === undefined) continue;
    out.push({ mountpoint: unescapeOctal(mountpoint), fsType, source: unescapeOctal(source), device });
  }
  return out;
}

export function mounts(): MountEntry[] {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

export function isMountpoint(dir: string): boolean {
  return mounts().some((m) => m.mountpoint === dir);
}
