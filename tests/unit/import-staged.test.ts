/**
 * The staged import (issue 13, "Unbounded work"): an import writes its rows in
 * many small transactions (lib/discovery/import-steps.ts). These tests use a
 * chunk of 7 entries on a table with remapped entries (created out of order,
 * with ties), pending, label and retired entries, and check that:
 *  - the finished database is what the one-transaction import wrote (the old
 *    statements, run here on a second database): remaps, retired, events in
 *    id order, meta_seq;
 *  - an import stopped between chunks shows no pair, keeps its name and UUID
 *    (and its devices) from a second import while it holds its lock, and is
 *    removed by the next import once the lock is free (or, with its devices
 *    gone, once its process is gone);
 *  - an import whose chunk throws removes what it wrote and fails;
 *  - the stepped driver lets the event loop run between the row chunks.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { FileDevice } from '../../lib/block/file-device.js';
import { importPair, importPairStepped, importSteps } from '../../lib/discovery/importer.js';
import { readTableOf } from '../../lib/discovery/probe-worker.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { recordOf } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { type HistoryEvent, Store } from '../../lib/store/db.js';
import { openSqlite } from '../../lib/store/sqlite.js';
import { poolBlockAt } from '../helpers/pool.js';
import { initPair, scratchStores, sparseFile } from '../helpers/scratch-stores.js';

const MAIN_BYTES = 64 * 1048576;
const SPARE_BYTES = 4 * 1048576;
const CHUNK = 7;

/** Everything an import writes for pair `pairId` of the database at `file`, read with SQL. */
function dump(file: string, pairId: number): Record<string, unknown> {
  const db = openSqlite(file);
  try {
    const all = (sql: string): unknown[] => db.prepare<[number]>(sql).raw<unknown[]>().all(pairId);
    return {
      remaps: all('SELECT main_block, spare_block, reason, state, lost_sectors, created_at FROM remaps WHERE pair_id = ? ORDER BY main_block'),
      retired: all('SELECT spare_block, created_at FROM retired WHERE pair_id = ? ORDER BY spare_block'),
      events: all('SELECT time, kind, block, value, detail FROM events WHERE pair_id = ? ORDER BY id'),
      metaSeq: all('SELECT meta_seq FROM pairs WHERE id = ?'),
    };
  } finally {
    db.close();
  }
}

function rowCounts(file: string): number[] {
  const db = openSqlite(file);
  try {
    return ['pairs', 'imports', 'remaps', 'retired', 'events'].map((t) => db.prepare(`SELECT count(*) FROM ${t}`).pluck<number>().get() as number);
  } finally {
    db.close();
  }
}

describe('the staged import', () => {
  const stores = scratchStores('remapfs-import-staged-');
  const freshStore = (): Store => stores.fresh();

  /** A pair `name` on two new images, made in a database of its own, with the mixed table written to its slots. */
  function makePair(name: string): { main: string; spare: string } {
    const main = path.join(stores.dir(), `${name}-main.img`);
    const spare = path.join(stores.dir(), `${name}-spare.img`);
    sparseFile(main, MAIN_BYTES);
    sparseFile(spare, SPARE_BYTES);
    expect(initPair(freshStore(), name, main, spare).labelError).toBeUndefined();
    writeMixedTable(spare);
    return { main, spare };
  }

  /** 40 remapped entries created out of order (with ties), 6 pending, 5 retired, and init's label entry. */
  function writeMixedTable(spare: string): void {
    const dev = FileDevice.open(spare, { mode: 'buffered' });
    try {
      const old = locateMetadata(dev)?.state as MetaState;
      const label = old.entries.filter((e) => e.reason === 'label');
      const used = new Set(label.map((e) => e.spareBlock));
      const free: number[] = [];
      for (let k = 0; free.length < 45; k++) if (!used.has(poolBlockAt(old.layout, k))) free.push(poolBlockAt(old.layout, k));
      const t0 = 1700000000000;
      const entries: SlotEntry[] = [...label];
      for (let k = 0; k < 40; k++) {
        entries.push({ mainBlock: 1000 - 7 * k, spareBlock: free[k] as number, createdAt: t0 + ((k * 7) % 13) * 1000, reason: k % 2 ? 'write-error' : 'scan-slow', state: 'remapped', lostSectors: k % 3 });
      }
      for (let k = 0; k < 6; k++) entries.push({ mainBlock: 2000 + k, spareBlock: -1, createdAt: t0 + 500 * k, reason: 'read-error', state: 'pending', lostSectors: 1 });
      for (let k = 0; k < 5; k++) entries.push({ mainBlock: -1, spareBlock: free[40 + k] as number, createdAt: t0 + 300 * k, reason: 'none', state: 'retired', lostSectors: 0 });
      const next = new MetaState(old.identity, old.layout, old.sequence + 1, entries);
      expect(new SlotSet(dev, old.layout).writeAll(next)).toEqual([]);
    } finally {
      dev.close();
    }
  }

  /** What the import wrote before it was staged: one transaction, replaceTable and one INSERT ... SELECT. */
  function oneTransactionImport(spare: string): { file: string; pairId: number } {
    const store = freshStore();
    const dev = FileDevice.open(spare, { readOnly: true, mode: 'buffered' });
    const found = locateMetadata(dev);
    dev.close();
    if (!found) throw new Error('no table');
    const h = found.newest.header;
    const entries = found.state.entries;
    const pair = store.transaction(() => {
      const p = store.pairs.insert({ name: h.name, uuid: h.uuid, mainPath: '/m', sparePath: '/s', blockSize: h.blockSize, mainBytes: h.mainBytes, spareBytes: h.spareBytes, createdAt: 0, metaSeq: h.sequence });
      store.remaps.replaceTable(
        p.id,
        entries.filter((e) => e.state !== 'retired').map(recordOf),
        entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt })),
        h.sequence,
      );
      return p;
    });
    const db = openSqlite(store.path);
    try {
      db.prepare<[number]>(
        `INSERT INTO events (pair_id, time, kind, block, value, detail)
         SELECT pair_id, created_at, CASE WHEN state = 'pending' THEN 'pending' WHEN reason = 'label' THEN 'label' ELSE 'remap' END, main_block, ifnull(spare_block, -1), reason
         FROM remaps WHERE pair_id = ? ORDER BY created_at, main_block`,
      ).run(pair.id);
    } finally {
      db.close();
    }
    return { file: store.path, pairId: pair.id };
  }

  it('writes, a chunk at a time, what the one-transaction import wrote', () => {
    const { main, spare } = makePair('p');
    const expected = oneTransactionImport(spare);
    // With the table as the worker reads it (its history sorted there), and as the CLI reads it here.
    for (const table of [readTableOf(spare), undefined]) {
      const store = freshStore();
      const r = importPair(store, main, spare, { chunkEntries: CHUNK, ...(table ? { table } : {}) });
      expect(r.remappedBlocks).toBe(40);
      expect(store.remaps.counts(r.pair.id)).toEqual({ remapped: 40, label: 1, pending: 6, retired: 5 });
      expect(dump(store.path, r.pair.id)).toEqual(dump(expected.file, expected.pairId));
      expect((dump(store.path, r.pair.id).events as unknown[]).length).toBe(47);
      expect(store.pairs.list().map((p) => p.name)).toEqual(['p']);
      expect(store.imports.unfinished()).toEqual([]);
    }
  });

  it('stopped between chunks: no pair to see, its name, UUID and devices refused while it holds its lock; the next import removes it', () => {
    const { main, spare } = makePair('p');
    const other = makePair('q'); // another pair, imported under the name p below
    const store = freshStore();
    const steps = importSteps(store, main, spare, { chunkEntries: CHUNK });
    let rowChunks = 0;
    while (rowChunks < 3) {
      const r = steps.next();
      if (r.done) throw new Error('the import finished before it could be stopped');
      if (r.value === 'rows') rowChunks++;
    }
    const [leftover] = store.imports.unfinished();
    expect(leftover?.pair.name).toBe('p');
    expect(leftover?.pid).toBe(process.pid);
    const oldId = leftover?.pair.id as number;
    // Rows are there, but no pair: not for this connection, nor for another one (a CLI's list or status).
    expect(store.remaps.counts(oldId).remapped + store.remaps.counts(oldId).label).toBeGreaterThan(0);
    expect(store.pairs.list()).toEqual([]);
    expect(store.pairs.get('p')).toBeUndefined();
    expect(store.pairs.byUuid(leftover?.pair.uuid as string)).toBeUndefined();
    const reader = Store.open(store.path, { create: false });
    stores.track(reader);
    expect(reader.pairs.list()).toEqual([]);

    // While it runs: the same devices are locked; its name and its UUID are taken.
    expect(() => importPair(store, main, spare)).toThrow(/is in use by this process/);
    expect(() => importPair(store, other.main, other.spare, { name: 'p' })).toThrow(/import p: a pair named p \(uuid [0-9a-f-]+\) is being imported by pid \d+ \(wait until that import is done\)/);
    const copyMain = path.join(stores.dir(), 'copy-main.img');
    const copySpare = path.join(stores.dir(), 'copy-spare.img');
    fs.copyFileSync(main, copyMain);
    fs.copyFileSync(spare, copySpare);
    expect(() => importPair(store, copyMain, copySpare, { name: 'r' })).toThrow(/import r: pair p with uuid [0-9a-f-]+ is being imported by pid \d+/);
    expect(store.imports.unfinished()).toHaveLength(1);

    // The process dies: its lock goes, its rows stay (invisible).
    steps.return(undefined as never);
    expect(store.imports.unfinished()).toHaveLength(1);
    expect(store.pairs.list()).toEqual([]);

    // The next import removes it (a chunk at a time) and succeeds.
    const r = importPair(store, main, spare, { chunkEntries: CHUNK });
    expect(store.imports.unfinished()).toEqual([]);
    expect(store.pairs.list().map((p) => p.name)).toEqual(['p']);
    // Every row is the new import's (SQLite may hand out the old pair id again): 1 pair, 41 + 6 remaps, 5 retired, 47 events.
    expect(rowCounts(store.path)).toEqual([1, 0, 47, 5, 47]);
    expect(dump(store.path, r.pair.id)).toEqual(dump(oneTransactionImport(spare).file, 1));
  });

  it('a leftover whose devices are gone is removed only once the process that began it is gone', () => {
    const { main, spare } = makePair('p');
    const other = makePair('q');
    const store = freshStore();
    const steps = importSteps(store, main, spare, { chunkEntries: CHUNK });
    while ((steps.next().value as string) !== 'rows');
    steps.return(undefined as never);
    fs.renameSync(main, `${main}.moved`);
    // Its process (this one) lives: the leftover stays, and keeps its name.
    expect(() => importPair(store, other.main, other.spare, { name: 'p' })).toThrow(/being imported by pid/);
    expect(store.imports.unfinished()).toHaveLength(1);
    // A process that is gone (a child that has exited and been reaped): removed by the next import.
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const db = openSqlite(store.path);
    db.prepare<[number]>('UPDATE imports SET pid = ?').run(gone);
    db.close();
    const r = importPair(store, other.main, other.spare, { name: 'p', chunkEntries: CHUNK });
    expect(r.pair.name).toBe('p');
    expect(store.imports.unfinished()).toEqual([]);
    expect(rowCounts(store.path)[0]).toBe(1);
  });

  it('a chunk that fails removes what the import wrote, and the import fails', () => {
    const { main, spare } = makePair('p');
    const store = freshStore();
    let calls = 0;
    const events = {
      addMany: (pairId: number, evs: readonly HistoryEvent[]): void => {
        if (++calls === 3) throw new Error('database or disk is full (injected)');
        store.events.addMany(pairId, evs);
      },
    };
    const faulty = new Proxy(store, { get: (target, key): unknown => (key === 'events' ? events : Reflect.get(target, key)) });
    expect(() => importPair(faulty, main, spare, { chunkEntries: CHUNK })).toThrow(/database or disk is full \(injected\)/);
    expect(calls).toBe(3);
    expect(store.pairs.list()).toEqual([]);
    expect(rowCounts(store.path)).toEqual([0, 0, 0, 0, 0]);
    // Nothing left in the way: the same import succeeds.
    expect(importPair(store, main, spare, { chunkEntries: CHUNK }).pair.name).toBe('p');
  });

  it('init refuses a name that an import in progress holds', () => {
    const { main, spare } = makePair('p');
    const store = freshStore();
    const steps = importSteps(store, main, spare, { chunkEntries: CHUNK });
    while ((steps.next().value as string) !== 'rows');
    const m2 = sparseFile(path.join(stores.dir(), 'init-main.img'), MAIN_BYTES);
    const s2 = sparseFile(path.join(stores.dir(), 'init-spare.img'), SPARE_BYTES);
    try {
      expect(() => initPair(store, 'p', m2, s2)).toThrow(/init p: a pair with this name is being imported by pid \d+/);
    } finally {
      steps.return(undefined as never);
    }
  });

  it('stepped, the event loop runs between the row chunks', async () => {
    const { main, spare } = makePair('p');
    const store = freshStore();
    let turns = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    try {
      const { value, stats } = await importPairStepped(store, main, spare, { table: readTableOf(spare), chunkEntries: CHUNK, served: () => turns });
      expect(value.adopted).toBeDefined();
      const rows = stats.phases.get('rows');
      // 52 entries and 47 events, 7 per chunk.
      expect(rows?.steps).toBe(8 + 7);
      expect(rows?.servedBetween).toBeGreaterThanOrEqual(rows ? rows.steps - 1 : 1);
      expect(store.pairs.list().map((p) => p.name)).toEqual(['p']);
    } finally {
      spinning = false;
    }
  });
});
