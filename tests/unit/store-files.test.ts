/**
 * The store's own file: created 0600 in a 0700 directory whatever the umask,
 * removed again when it was made for nothing, and a watched store refuses
 * every transaction once its path names another file or none.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Store } from '../../lib/store/db.js';

describe('the store file', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is created 0600 in new directories 0700 under umask 000', () => {
    const db = path.join(dir, 'a', 'b', 'remapfs.db');
    const old = process.umask(0);
    let store: Store;
    try {
      store = Store.open(db, { create: true });
    } finally {
      process.umask(old);
    }
    try {
      expect(fs.statSync(db).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.join(dir, 'a')).mode & 0o777).toBe(0o700);
      expect(fs.statSync(path.join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
      expect(store.quickCheck()).toBe('ok');
    } finally {
      store.close();
    }
  });

  it('removeIfUnused deletes a database this process created and left empty, and nothing else', () => {
    const db = path.join(dir, 'remapfs.db');
    const made = Store.open(db, { create: true });
    made.removeIfUnused();
    made.close();
    expect(fs.readdirSync(dir)).toEqual([]);

    Store.open(db, { create: true }).close();
    const reopened = Store.open(db, { create: true });
    expect(reopened.created).toBe(false);
    reopened.removeIfUnused();
    reopened.close();
    expect(fs.existsSync(db)).toBe(true);
  });

  it.each([
    ['deleted', (db: string) => fs.rmSync(db), /the database file was deleted/],
    [
      'replaced',
      (db: string) => {
        fs.copyFileSync(db, `${db}.new`);
        fs.renameSync(`${db}.new`, db);
      },
      /the database file was replaced by another file/,
    ],
  ])('a watched store refuses transactions once its file was %s', (_what, change, cause) => {
    const db = path.join(dir, 'remapfs.db');
    const store = Store.open(db, { create: true });
    try {
      store.watchFile();
      store.transaction(() => store.mounts.put({ mountpoint: '/x', pid: 1, socket: '/s', startedAt: 1 }));
      expect(store.checkFile()).toBeUndefined();
      change(db);
      expect(() => store.transaction(() => store.mounts.delete('/x', 1))).toThrow(cause);
      expect(store.lost).toMatch(cause);
      expect(() => store.transaction(() => undefined)).toThrow(/^write database .*remapfs\.db: .* \(stop the daemon/);
    } finally {
      store.close();
    }
  });
});
