/**
 * Databases for unit tests: a scratch directory per test, a new database file
 * in it on every fresh(), and all of them closed and the directory removed
 * after the test, even when it fails. Call at describe level, before the
 * suite's own beforeEach (which then sees dir()).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DeviceLock } from '../../lib/block/device-lock.js';
import { createPair, planPair } from '../../lib/pair/create.js';
import { Store } from '../../lib/store/db.js';

export interface ScratchStores {
  /** This test's directory. */
  dir(): string;
  /** A new database in dir(), closed after the test. */
  fresh(): Store;
  /** Closes `s` after the test as well. */
  track(s: Store): Store;
}

export function scratchStores(prefix: string): ScratchStores {
  let dir: string | undefined;
  let n = 0;
  const open: Store[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const here = (): string => {
    if (!dir) throw new Error('scratch stores exist only inside a test');
    return dir;
  };
  const track = (s: Store): Store => {
    open.push(s);
    return s;
  };
  return { dir: here, fresh: () => track(Store.open(path.join(here(), `db-${n++}.db`), { create: true })), track };
}

/** A sparse file of `sizeBytes` at `file` (an image). */
export function sparseFile(file: string, sizeBytes: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeBytes);
  return file;
}

/** `remapfs init` of pair `name` on these images into `store`, under their lock, as the CLI does. */
export function initPair(store: Store, name: string, main: string, spare: string): ReturnType<typeof createPair> {
  const plan = planPair(name, main, spare, 4096, String);
  const lock = DeviceLock.acquire([plan.main.realPath, plan.spare.realPath], { op: 'test', object: name, waitMs: 0 });
  try {
    return createPair(store, plan, false, lock);
  } finally {
    lock.release();
  }
}
