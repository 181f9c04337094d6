/**
 * The serving thread's cost of a hot-plug import of a pair with a huge table (issue 13, "Unbounded work"):
 * builds a pair of 4 GiB sparse images whose table has `--entries` remapped entries (default 1,000,000),
 * has its table read as the discovery worker would (not timed: off the serving thread in the daemon), then
 * runs on this thread what the daemon's hot-plug runs there, each step timed:
 *   - the import (hot-plug's importer, into a fresh database with the daemon's page cache, Store.limitCache);
 *   - the pair's open with the adopted table (openPairSteps: seal, the index in steps), and the index in one step;
 *   - the native engine's route publish (NativeAdapter.addFile, with an engine that is created but never mounted).
 * A setImmediate chain runs meanwhile: its longest gap is the longest time the event loop could not run.
 *
 *   node dist/scripts/import-stall.js [--entries N] [--dir /var/tmp] [--cache default]
 *
 * --cache default: leave the database's page cache at better-sqlite3's default instead of the daemon's.
 * Needs the native helper (device locks) and the native engine (the publish step; skipped without it).
 */
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { DeviceLock } from '../lib/block/device-lock.js';
import { servedPairFile } from '../lib/daemon/served-mount.js';
import { readTableOf } from '../lib/discovery/probe-worker.js';
import { loadEngine } from '../lib/fs/engine-api.js';
import { NativeAdapter } from '../lib/fs/native-adapter.js';
import { growTable } from '../lib/lab/grow-table.js';
import { createPair, planPair } from '../lib/pair/create.js';
import { indexFromState, openPairSteps } from '../lib/pair/pair.js';
import { Store } from '../lib/store/db.js';
import { steppedImport } from '../lib/daemon/hotplug.js';
import { describeSteps, runStepped } from '../lib/discovery/steps.js';

const GiB = 1024 * 1024 * 1024;

/** The longest gap between two turns of the event loop while it runs. */
function gapMonitor(): { stop: () => number } {
  let last = performance.now();
  let longest = 0;
  let on = true;
  const tick = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop: () => {
      on = false;
      return Math.max(longest, performance.now() - last);
    },
  };
}

async function timed<T>(what: string, fn: () => T | Promise<T>): Promise<T> {
  const gaps = gapMonitor();
  const t = performance.now();
  const out = await fn();
  const ms = performance.now() - t;
  console.log(`${what}: ${ms.toFixed(0)} ms, longest main-thread step ${gaps.stop().toFixed(0)} ms`);
  return out;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const entries = Number(opt('--entries') ?? 1_000_000);
  const dir = fs.mkdtempSync(path.join(opt('--dir') ?? '/var/tmp', 'remapfs-import-stall-'));
  const stores: Store[] = [];
  try {
    const main = path.join(dir, 'main.img');
    const spare = path.join(dir, 'spare.img');
    for (const p of [main, spare]) {
      fs.writeFileSync(p, '');
      fs.truncateSync(p, 4 * GiB);
    }
    const origin = Store.open(path.join(dir, 'origin.db'), { create: true });
    stores.push(origin);
    const plan = planPair('big', main, spare, 4096, String);
    const lock = DeviceLock.acquire([plan.main.realPath, plan.spare.realPath], { op: 'import-stall', object: 'big', waitMs: 0 });
    try {
      createPair(origin, plan, false, lock);
    } finally {
      lock.release();
    }
    const count = growTable(spare, entries);
    const read = readTableOf(spare);
    console.log(`a table of ${count} entries, read off the measured path`);

    const store = Store.open(path.join(dir, 'daemon.db'), { create: true });
    stores.push(store);
    if (opt('--cache') !== 'default') store.limitCache();
    const { value: imported, stats } = await timed('import (database write)', () => steppedImport(store, main, spare, read, {}));
    for (const [phase, s] of stats.phases) console.log(`  ${phase}: ${describeSteps(s)}`);
    const slow = stats.stepMs.filter((ms) => ms > 100).map((ms) => ms.toFixed(0));
    console.log(`  the longest step: ${stats.longestPhase}; steps over 100 ms: ${slow.join(', ') || 'none'}`);
    if (!imported.adopted) throw new Error('the import did not hand the table on');
    const adopted = imported.adopted;
    const { value: rt, stats: openStats } = await timed('open (seal, index in steps, journal)', () => runStepped(openPairSteps(store, imported.pair, { mode: 'buffered', adopted })));
    for (const [phase, s] of openStats.phases) console.log(`  ${phase}: ${describeSteps(s)}`);
    try {
      await timed('the index alone, in one step (built again)', () => indexFromState(imported.pair, rt.opened.state));
      const api = loadEngine();
      if (typeof api === 'string') {
        console.log(`engine publish: skipped (${api})`);
      } else {
        const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
        const adapter = new NativeAdapter(api, mnt, []);
        await timed('engine publish (addFile: every route)', () => adapter.addFile(servedPairFile(rt)));
        adapter.removeFile('big');
        await adapter.unmount();
      }
    } finally {
      rt.close();
    }
  } finally {
    for (const s of stores) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
