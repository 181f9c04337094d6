/**
 * Discovery off the serving thread, for the daemon's hot-plug rescan.
 *
 * Split: the candidates are listed on the caller's thread (directory listings
 * and sysfs, cheap); probing them (slot headers, labels, and the tables that
 * could matter: probe.ts) runs in one long-lived worker thread
 * (probe-worker.ts), which keeps the cache, so an unchanged candidate is not
 * read again; the report is put together on the caller's thread from the
 * store (pairUp), and the caller applies it there.
 *
 * One run at a time: a request made while a run is in flight waits, and every
 * such request shares the next run (a burst of file-system events costs one
 * more run at most). The worker is unref'd (it never keeps the process
 * alive); if it dies, the runs waiting on it fail and the next request starts
 * a new worker. Where the compiled worker script is missing (running the
 * TypeScript sources directly), runs are done inline, and that is logged once.
 *
 * The same worker reads a spare's whole table for a hot-plug import
 * (readTableInBackground): validated there, its entry pages transferred, so
 * the serving thread only checks the seal, writes the database and builds
 * the index.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { Store } from '../store/db.js';
import { type DiscoverOptions, type DiscoveryReport, gatherCandidates, pairUp } from './discover.js';
import { newProbeStats, ProbeCache, probeCandidates, type Probed, type ProbeStats, type TablesFor } from './probe.js';
import type { ProbeReply, ProbeRequest, TableRead } from './probe-worker.js';
import { readTableOf, WORKER_MARK } from './probe-worker.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface BackgroundOptions extends DiscoverOptions {
  /** UUIDs whose tables are not needed: pairs served from devices that are still there. */
  skipTables?: readonly string[];
  log: (line: string) => void;
  /** Requests the caller has served so far: logged as those served while a run was in flight. */
  requestsServed?: () => number;
}

interface Job {
  dirs: readonly string[];
  store: Store;
  opts: BackgroundOptions;
  waiters: Array<{ resolve: (r: DiscoveryReport) => void; reject: (e: unknown) => void }>;
}

const WORKER_FILE = path.join(HERE_DIR, 'probe-worker.js');
let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (r: Extract<ProbeReply, { ok: true }>) => void; reject: (e: unknown) => void }>();
let running = false;
let queued: Job | undefined;
let inlineNoted = false;
const inlineStats = newProbeStats();
const inlineCache = new ProbeCache();
let lastStats: ProbeStats = newProbeStats();

/** Probes and pairs the candidates of `dirs` off this thread; resolves on this thread. */
export function discoverInBackground(dirs: readonly string[], store: Store, opts: BackgroundOptions): Promise<DiscoveryReport> {
  return new Promise((resolve, reject) => {
    if (queued) {
      // The next run has not started: it serves this request too, with the latest arguments.
      queued.dirs = dirs;
      queued.store = store;
      queued.opts = opts;
      queued.waiters.push({ resolve, reject });
      return;
    }
    queued = { dirs, store, opts, waiters: [{ resolve, reject }] };
    if (!running) void runQueued();
  });
}

/** Stops the worker (tests; a daemon just exits). Runs in flight fail. */
export function stopBackgroundDiscovery(): Promise<void> {
  const w = worker;
  worker = undefined;
  return w ? w.terminate().then(() => undefined) : Promise.resolve();
}

async function runQueued(): Promise<void> {
  while (queued) {
    const job = queued;
    queued = undefined;
    running = true;
    try {
      const report = await runOnce(job);
      for (const w of job.waiters) w.resolve(report);
    } catch (err) {
      for (const w of job.waiters) w.reject(err);
    } finally {
      running = false;
    }
  }
}

async function runOnce(job: Job): Promise<DiscoveryReport> {
  const { opts, store } = job;
  const candidates = gatherCandidates(job.dirs, opts);
  const skip = new Set(opts.skipTables ?? []);
  const tablesFor: TablesFor = { uuids: store.pairs.list().map((p) => p.uuid).filter((u) => !skip.has(u)) };
  const servedBefore = opts.requestsServed?.() ?? 0;
  let found: Probed[];
  let before: ProbeStats;
  let s: ProbeStats;
  let where = 'in the worker';
  if (fs.existsSync(WORKER_FILE)) {
    const r = await ask({ id: nextId++, paths: candidates.paths, tablesFor });
    if (r.kind === 'table') throw new Error('discovery worker: a table where a probe report was asked for');
    // A new worker counts from zero.
    before = r.stats.runs === 1 ? newProbeStats() : lastStats;
    lastStats = r.stats;
    found = r.found;
    s = r.stats;
  } else {
    if (!inlineNoted) opts.log(`remapfs: discovery runs on the serving thread: no worker script at ${WORKER_FILE}`);
    inlineNoted = true;
    before = { ...inlineStats, lastRead: [] };
    found = probeCandidates(candidates.paths, tablesFor, inlineCache, inlineStats);
    s = inlineStats;
    where = 'on the serving thread';
  }
  const served = (opts.requestsServed?.() ?? 0) - servedBefore;
  const reads = s.tableReads - before.tableReads;
  const line = `discovery run ${s.runs}: ${candidates.paths.length} candidate(s), ${s.cacheHits - before.cacheHits} unchanged, ${reads} slot table(s) read (${s.entriesRead - before.entriesRead} entries) ${where}; table reads so far ${s.tableReads}; ${served} request(s) served meanwhile${s.lastRead.length ? ` (tables of ${s.lastRead.join(', ')})` : ''}`;
  if (reads > 0 || process.env.REMAPFS_DEBUG) opts.log(`remapfs: ${line}`);
  return pairUp(found, candidates.scanned, store, opts);
}

/** Where background work runs: 'in the worker', or 'on the serving thread' without the worker script. */
export function backgroundWhere(): string {
  return fs.existsSync(WORKER_FILE) ? 'in the worker' : 'on the serving thread';
}

/** Reads and validates the table on `sparePath` off this thread (see the design note). */
export async function readTableInBackground(sparePath: string): Promise<TableRead> {
  if (!fs.existsSync(WORKER_FILE)) return readTableOf(sparePath);
  const r = await ask({ id: nextId++, kind: 'table', sparePath });
  if (r.kind !== 'table') throw new Error('discovery worker: a probe report where a table was asked for');
  if (!('table' in r.read)) return r.read;
  // Structured clone delivers plain Uint8Arrays: view them as Buffers again (no copy).
  const t = r.read.table;
  const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return { table: { ...t, pages: asBuffer(t.pages), seal: asBuffer(t.seal) } };
}

function ask(req: ProbeRequest): Promise<Extract<ProbeReply, { ok: true }>> {
  const w = worker ?? startWorker();
  return new Promise((resolve, reject) => {
    pending.set(req.id, { resolve, reject });
    w.postMessage(req);
  });
}

function startWorker(): Worker {
  const w = new Worker(WORKER_FILE, { workerData: WORKER_MARK });
  w.unref();
  const failAll = (err: unknown): void => {
    if (worker === w) worker = undefined;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  w.on('message', (reply: ProbeReply) => {
    const p = pending.get(reply.id);
    pending.delete(reply.id);
    if (!p) return;
    if (reply.ok) p.resolve(reply);
    else p.reject(new Error(`discovery worker: ${reply.error}`));
  });
  w.on('error', failAll);
  w.on('exit', (code) => failAll(new Error(`discovery worker exited with status ${code}`)));
  worker = w;
  return w;
}
