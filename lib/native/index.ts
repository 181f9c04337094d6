/**
 * The native helper (binding.gyp, native/): a few syscalls that Node does not
 * offer. Loading it never throws: without it, what needs it (device locks,
 * so every command that writes to a device) refuses, and nativeLoadError()
 * says why in one line.
 *
 * Layout: the add-on is build/Release/remapfs_native.node under the package
 * root, found by walking up from this file (lib/native/ or dist/lib/native/)
 * to the package.json named "remapfs". It is loaded once, on first use, and
 * the result (helpers or the error) is kept for the life of the process.
 */

import * as fs from 'fs';
import * as path from 'path';
import { createRequire } from 'module';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The add-on's functions; each acts on the calling thread or on one fd. */
export interface NativeHelpers {
  /** prctl(PR_SET_IO_FLUSHER, 1) on the calling thread; returns 0 or the errno name ('EINVAL', 'EPERM'). */
  setIoFlusher(): 0 | string;
  /** prctl(PR_GET_IO_FLUSHER) on the calling thread: 1, 0, or an errno name. */
  getIoFlusher(): number | string;
  /** flock(fd, LOCK_EX|LOCK_SH [|LOCK_NB]); true when taken, false on EWOULDBLOCK; other errors throw an Error with .code (errno name). EINTR is retried. */
  flock(fd: number, mode: 'exclusive' | 'shared', wait: boolean): boolean;
  /** flock(fd, LOCK_UN). */
  unlock(fd: number): void;
}

const ADDON_PATH = path.join('build', 'Release', 'remapfs_native.node');
const FUNCTIONS = ['setIoFlusher', 'getIoFlusher', 'flock', 'unlock'] as const;

let loaded: { helpers: NativeHelpers | undefined; error: string | undefined } | undefined;

/** undefined when the add-on cannot load; nativeLoadError() says why in one line. */
export function nativeHelpers(): NativeHelpers | undefined {
  return load().helpers;
}

export function nativeLoadError(): string | undefined {
  return load().error;
}

function load(): { helpers: NativeHelpers | undefined; error: string | undefined } {
  if (loaded) return loaded;
  const root = packageRoot(HERE_DIR);
  if (root === undefined) {
    loaded = { helpers: undefined, error: `no remapfs package.json above ${HERE_DIR}` };
    return loaded;
  }
  const addonPath = path.join(root, ADDON_PATH);
  if (!fs.existsSync(addonPath)) {
    loaded = { helpers: undefined, error: `${addonPath} is missing (run scripts/setup.sh to build it)` };
    return loaded;
  }
  try {
    const mod = createRequire(import.meta.url)(addonPath) as Record<string, unknown>;
    const absent = FUNCTIONS.filter((name) => typeof mod[name] !== 'function');
    if (absent.length > 0) {
      loaded = { helpers: undefined, error: `${addonPath} lacks ${absent.join(', ')} (rebuild it: scripts/setup.sh)` };
    } else {
      loaded = { helpers: mod as unknown as NativeHelpers, error: undefined };
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    loaded = { helpers: undefined, error: `${addonPath} does not load: ${msg.split('\n')[0]}` };
  }
  return loaded;
}

function packageRoot(start: string): string | undefined {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    try {
      const parsed = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown };
      if (parsed.name === 'remapfs') return dir;
    } catch {
      // no (readable) package.json here: keep walking up
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}
