/**
 * The store's repositories on a temporary database: each one's round trip,
 * transactions (a throw rolls every change back), and a database made before
 * pairs.spare_hwid and bad_sectors existed (open adds them).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import { type NewPair, type PairRecord, type RemapRecord, Store } from '../../lib/store/db.js';

const PAIR: NewPair = { name: 'p', uuid: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/dev/a', sparePath: '/dev/b', blockSize: 4096, mainBytes: 1 << 30, spareBytes: 1 << 26, createdAt: 1000, metaSeq: 3 };

function remap(mainBlock: number, spareBlock: number, extra: Partial<RemapRecord> = {}): RemapRecord {
  return { mainBlock, spareBlock, reason: 'manual', state: 'remapped', lostSectors: 0, createdAt: 2000 + mainBlock, ...extra };
}

describe('the store', () => {
  let dir: string;
  let store: Store;
  let pair: PairRecord;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-store-'));
    store = Store.open(path.join(dir, 'remapfs.db'), { create: true });
    pair = store.pairs.insert(PAIR);
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pairs: insert, look up by name and uuid, update and delete (which cascades)', () => {
    expect(pair).toEqual({ ...PAIR, id: pair.id, mainLabel: false, mainHwid: null, spareHwid: null });
    expect(store.pairs.get('p')).toEqual(pair);
    expect(store.pairs.byUuid(PAIR.uuid)).toEqual(pair);
    expect(store.pairs.get('nope')).toBeUndefined();
    const q = store.pairs.insert({ ...PAIR, name: 'a', uuid: '2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', spareHwid: 'WWN-2' });
    expect(store.pairs.list().map((r) => r.name)).toEqual(['a', 'p']);
    expect(store.pairs.get('a')?.spareHwid).toBe('WWN-2');
    expect(() => store.pairs.insert({ ...PAIR, uuid: '3c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' })).toThrow(/UNIQUE/);

    store.pairs.setMainLabel(pair.id, 'SERIAL-1');
    store.pairs.updatePaths(pair.id, '/dev/c', '/dev/d');
    expect(store.pairs.get('p')).toMatchObject({ mainLabel: true, mainHwid: 'SERIAL-1', mainPath: '/dev/c', sparePath: '/dev/d', spareHwid: null });
    store.pairs.updatePaths(pair.id, '/dev/e', '/dev/f', 'WWN-1');
    expect(store.pairs.get('p')).toMatchObject({ mainPath: '/dev/e', sparePath: '/dev/f', spareHwid: 'WWN-1' });
    store.pairs.setMetaSeq(pair.id, 42);
    expect(store.pairs.metaSeq(pair.id)).toBe(42);

    store.remaps.put(q.id, remap(1, 10));
    store.events.add(q.id, 1, 'remap', 1, 10, 'manual');
    store.pairs.delete(q.id);
    expect(store.pairs.get('a')).toBeUndefined();
    expect(store.remaps.list(q.id)).toEqual([]);
    expect(store.events.recent(q.id, 10)).toEqual([]);
  });

  it('remaps and retired blocks: put, list, replace, count and aggregate', () => {
    store.remaps.put(pair.id, remap(7, 70));
    store.remaps.putMany(pair.id, [remap(3, 30, { reason: 'read-error', lostSectors: 2 }), remap(5, -1, { state: 'pending', reason: 'weak-read' }), remap(0, 9, { reason: 'label' })]);
    store.remaps.put(pair.id, remap(7, 71, { reason: 'write-error' })); // replaces main block 7
    // A spare block that another main block holds is refused, and that other entry stays.
    expect(() => store.remaps.put(pair.id, remap(8, 71))).toThrow(/UNIQUE/);
    expect(store.remaps.list(pair.id)).toEqual([
      remap(0, 9, { reason: 'label' }),
      remap(3, 30, { reason: 'read-error', lostSectors: 2 }),
      remap(5, -1, { state: 'pending', reason: 'weak-read' }),
      remap(7, 71, { reason: 'write-error' }),
    ]);

    store.remaps.putRetired(pair.id, 70, 5000);
    store.remaps.putRetired(pair.id, 12, 6000);
    store.remaps.putRetired(pair.id, 70, 7000); // already retired: the first time stays
    expect(store.remaps.retired(pair.id)).toEqual([12, 70]);
    expect(store.remaps.retiredWithTimes(pair.id)).toEqual([
      { spareBlock: 12, createdAt: 6000 },
      { spareBlock: 70, createdAt: 5000 },
    ]);
    expect(store.remaps.counts(pair.id)).toEqual({ remapped: 2, label: 1, pending: 1, retired: 2 });
    expect(store.remaps.byReason(pair.id)).toEqual({ 'read-error': 1, 'write-error': 1 });
    expect(store.remaps.lostSectors(pair.id)).toBe(2);
    // 4 remaps and 2 retired blocks; the triggers keep the same sums as the aggregate over the rows.
    expect(store.remaps.rowPrintParts(pair.id)[0]).toBe(6);
    expect(store.remaps.storedPrintParts(pair.id)).toEqual(store.remaps.rowPrintParts(pair.id));

    store.transaction(() => store.remaps.replaceTable(pair.id, [remap(1, 11)], [{ spareBlock: 99, createdAt: 1 }], 17));
    expect(store.remaps.list(pair.id)).toEqual([remap(1, 11)]);
    expect(store.remaps.retiredWithTimes(pair.id)).toEqual([{ spareBlock: 99, createdAt: 1 }]);
    expect(store.pairs.metaSeq(pair.id)).toBe(17);
    expect(store.remaps.storedPrintParts(pair.id)).toEqual(store.remaps.rowPrintParts(pair.id));
  });

  it('events: appended, read newest first, remap times and counts', () => {
    store.events.add(pair.id, 100, 'remap', 1, 10, 'manual');
    store.events.add(pair.id, 200, 'retired', null, 10, null);
    store.events.add(pair.id, 300, 'remap', 2, 0.5, 'scan-slow');
    store.events.add(pair.id, 50, 'remap', 3, null, null); // ids, not times, order recent()
    expect(store.events.recent(pair.id, 2)).toEqual([
      { time: 50, kind: 'remap', block: 3, value: null, detail: null },
      { time: 300, kind: 'remap', block: 2, value: 0.5, detail: 'scan-slow' },
    ]);
    expect(store.events.remapDays(pair.id, 300, 1)).toEqual([3]);
    expect(store.events.remapCount(pair.id)).toBe(3);
  });

  it('health: settings, scan state, slow blocks and report state', () => {
    store.health.setConfig(pair.id, 'scanEnabled', 'false');
    store.health.setConfig(pair.id, 'scanEnabled', 'true');
    store.health.setConfig(pair.id, 'other', '"x"');
    expect(store.health.config(pair.id, ['scanEnabled', 'other', 'unset'], 64)).toEqual([
      { key: 'other', type: 'text', chars: 3, value: '"x"' },
      { key: 'scanEnabled', type: 'text', chars: 4, value: 'true' },
    ]);
    // Keys not asked for are not read; a text longer than asked for is not handed out.
    expect(store.health.config(pair.id, ['scanEnabled'], 3)).toEqual([{ key: 'scanEnabled', type: 'text', chars: 4, value: null }]);

    expect(store.health.scanState(pair.id)).toBeUndefined();
    const scan = { cursorBlock: 12, passStartedAt: 5, passesCompleted: 2, lastPassFinishedAt: null, maxBlockScanned: 11, nextDueAt: 99, summaries: '{"last":null}' };
    store.health.putScanState(pair.id, scan);
    expect(store.health.scanState(pair.id)).toEqual(scan);
    store.health.putScanState(pair.id, { ...scan, cursorBlock: 13, summaries: null });
    expect(store.health.scanState(pair.id)).toEqual({ ...scan, cursorBlock: 13, summaries: null });

    store.health.putSlowBlock(pair.id, 9, 120.5, 1);
    store.health.putSlowBlock(pair.id, 4, 80, 1);
    store.health.putSlowBlock(pair.id, 6, 90, 1);
    store.health.putSlowBlock(pair.id, 7, 90, 1);
    store.health.putSlowBlock(pair.id, 8, 90, 1);
    store.health.clearSlowBlocks(pair.id, 6, 8); // blocks 6 and 7, not 8
    expect(store.health.slowBlocks(pair.id).map((s) => s.block)).toEqual([4, 8, 9]);
    store.health.clearSlowBlocks(pair.id, 8, 9);
    store.remaps.put(pair.id, remap(9, 90)); // a remapped slow block is no longer listed
    expect(store.health.slowBlocks(pair.id)).toEqual([{ block: 4, latencyMs: 80 }]);

    expect(store.health.reportState(pair.id, 2000, 5)).toBeUndefined();
    store.health.putReportState(pair.id, 1234, 5);
    expect(store.health.reportState(pair.id, 2000, 5)).toEqual({ reportedAt: 1234, remapEvents: 5 });
  });

  it('bad sectors: recorded once each, listed in order', () => {
    store.badSectors.add(pair.id, [80, 8, 800], 'import', 1);
    store.badSectors.add(pair.id, [8, 9], 'read-error', 2);
    expect(store.badSectors.list(pair.id)).toEqual([8, 9, 80, 800]);
  });

  it('mounts: put, get, live (a dead daemon is left out), delete by pid and forget', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    const now = Date.now();
    store.mounts.put({ mountpoint: '/m1', pid: process.pid, socket: '/s1', startedAt: now });
    store.mounts.put({ mountpoint: '/m2', pid: gone, socket: '/s2', startedAt: 2 });
    store.mounts.put({ mountpoint: '/m3', pid: process.pid, socket: '/s3', startedAt: 3 }); // its pid now names a later process
    expect(store.mounts.get('/m2')).toEqual({ mountpoint: '/m2', pid: gone, socket: '/s2', startedAt: 2 });
    expect(store.mounts.live()).toEqual([{ mountpoint: '/m1', pid: process.pid, socket: '/s1', startedAt: now }]);
    store.mounts.forget('/m3');
    store.mounts.delete('/m1', gone); // another daemon's row stays
    expect(store.mounts.get('/m1')?.pid).toBe(process.pid);
    store.mounts.delete('/m1', process.pid);
    store.mounts.forget('/m2');
    expect(store.mounts.get('/m1')).toBeUndefined();
    expect(store.mounts.get('/m2')).toBeUndefined();
  });

  it('a transaction returns its result, and a throw inside it rolls every change back', () => {
    expect(store.transaction(() => store.pairs.metaSeq(pair.id) + 1)).toBe(4);
    expect(() =>
      store.transaction(() => {
        store.remaps.put(pair.id, remap(1, 10));
        store.events.add(pair.id, 1, 'remap', 1, 10, null);
        store.pairs.setMetaSeq(pair.id, 4);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(store.remaps.list(pair.id)).toEqual([]);
    expect(store.events.remapCount(pair.id)).toBe(0);
    expect(store.pairs.metaSeq(pair.id)).toBe(3);
    // A failing statement inside rolls back the statements before it too.
    expect(() =>
      store.transaction(() => {
        store.remaps.put(pair.id, remap(1, 10));
        store.pairs.insert({ ...PAIR, uuid: '5c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' }); // the name is taken
      }),
    ).toThrow(/UNIQUE/);
    expect(store.remaps.list(pair.id)).toEqual([]);
  });
});

describe('a database made before pairs.spare_hwid and bad_sectors existed', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('opens with the column and the table added and its rows intact', () => {
    const file = path.join(dir, 'old.db');
    const old = new Database(file);
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE pairs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL UNIQUE, main_path TEXT NOT NULL,
        spare_path TEXT NOT NULL, block_size INTEGER NOT NULL, main_bytes INTEGER NOT NULL, spare_bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL, meta_seq INTEGER NOT NULL DEFAULT 0, main_label INTEGER NOT NULL DEFAULT 0, main_hwid TEXT);
      INSERT INTO pairs VALUES (1, 'old', '4c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', '/dev/a', '/dev/b', 4096, 1048576, 1048576, 1, 7, 1, 'SERIAL');
      CREATE TABLE remaps (pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, main_block INTEGER NOT NULL, spare_block INTEGER,
        reason TEXT NOT NULL, state TEXT NOT NULL, lost_sectors INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
        PRIMARY KEY (pair_id, main_block), UNIQUE (pair_id, spare_block)) WITHOUT ROWID;
      CREATE TABLE retired (pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE, spare_block INTEGER NOT NULL,
        created_at INTEGER NOT NULL, PRIMARY KEY (pair_id, spare_block)) WITHOUT ROWID;
      CREATE TABLE mounts (mountpoint TEXT PRIMARY KEY, pid INTEGER NOT NULL, socket TEXT NOT NULL, started_at INTEGER NOT NULL);
    `);
    // (The tables remapfs has had from the start; the health tables, bad_sectors, imports and table_prints came later.)
    old.close();

    const store = Store.open(file, { create: false });
    try {
      expect(store.created).toBe(false);
      const pair = store.pairs.get('old');
      expect(pair).toMatchObject({ id: 1, metaSeq: 7, mainLabel: true, mainHwid: 'SERIAL', spareHwid: null });
      store.pairs.updatePaths(1, '/dev/c', '/dev/d', 'WWN');
      expect(store.pairs.get('old')?.spareHwid).toBe('WWN');
      store.badSectors.add(1, [5], 'import', 1);
      expect(store.badSectors.list(1)).toEqual([5]);
      store.remaps.put(1, remap(2, 20));
      expect(store.remaps.counts(1)).toEqual({ remapped: 1, label: 0, pending: 0, retired: 0 });
      expect(store.quickCheck()).toBe('ok');
    } finally {
      store.close();
    }
  });

  it('a file with other tables is refused and left as it was', () => {
    const file = path.join(dir, 'other.db');
    const other = new Database(file);
    other.exec('CREATE TABLE customers (id INTEGER)');
    other.close();
    const before = fs.readFileSync(file);
    expect(() => Store.open(file, { create: false })).toThrow(/^open database .*other\.db: not a remapfs database \(it has other tables\)/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });
});
