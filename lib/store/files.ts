/**
 * The database file on disk: its identity (dev:ino), private creation (0600 in
 * directories made 0700, whatever the umask) and removal with its -wal, -shm
 * and -journal companions. No SQL here.
 */
import * as fs from 'fs';
import * as path from 'path';

/** "dev:ino" of the file at `p`, or undefined when there is none. */
export function fileIdentity(p: string): string | undefined {
  try {
    const st = fs.statSync(p, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Creates the database file 0600 (and missing directories 0700), whatever the
 * umask; false when another process created it first.
 */
export function createPrivateFile(abs: string): boolean {
  const first = fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o700 });
  if (first !== undefined) {
    for (let d = path.dirname(abs); d.length >= first.length; d = path.dirname(d)) {
      fs.chmodSync(d, 0o700);
      if (d === first) break;
    }
  }
  try {
    const fd = fs.openSync(abs, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw err;
  }
}

export function removeDatabaseFiles(abs: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(abs + suffix, { force: true });
}
