/**
 * Where a daemon's memory goes with 1,000,000 remap entries (issue 15's RSS ≤ 200 MB target). Builds the
 * scale phase's pair (scripts/bench/phase-scale.ts: a 10 GiB main, 1M entries beyond its first GiB), mounts
 * it with the native engine, runs the scale phase's last cell (random 4 KiB writes at QD32 on the loop
 * device) and prints: VmRSS and its parts from /proc/<pid>/status, the biggest mappings from smaps, the
 * daemon's own process.memoryUsage() and V8 heap (scripts/rss-probe.ts, loaded with NODE_OPTIONS), the
 * SQLite settings that bound its page cache, and the engine's route table; then what a first remap adds.
 *
 *   node dist/scripts/rss-breakdown.js [--dir /var/tmp] [--runs N] [--gc]
 *
 * --gc: the daemon collects garbage before each snapshot (a diagnosis: it changes what is measured).
 *
 * Needs root (FUSE, loop devices). Everything it makes is undone at the end.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { detachLoop, Lab, requireKernelFeatures, sleep } from '../lib/lab/lab.js';
import { CELLS, GiB, MiB, readConfig } from './bench/config.js';
import { filledPair, injectRemaps } from './bench/images.js';
import { fio } from './bench/measure.js';
import { openSqlite } from '../lib/store/sqlite.js';

const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));
const ENTRIES = 1_000_000;
const mb = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MB`;

function statusFields(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(Vm\w+|Rss\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]) * 1024;
  }
  return out;
}

/** The mappings with the most resident memory (from smaps). */
function topMappings(pid: number, count: number): string[] {
  const maps: Array<{ name: string; sizeBytes: number; rssBytes: number }> = [];
  let cur: { name: string; sizeBytes: number; rssBytes: number } | undefined;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { name: `${head[1] as string} ${head[3] || '[anon]'}`, sizeBytes: parseInt(head[2] as string, 16) - parseInt(head[1] as string, 16), rssBytes: 0 };
      maps.push(cur);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && cur) cur.rssBytes = Number(rss[1]) * 1024;
  }
  return maps
    .sort((a, b) => b.rssBytes - a.rssBytes)
    .slice(0, count)
    .map((m) => `  ${mb(m.rssBytes).padStart(9)} of ${mb(m.sizeBytes).padStart(9)}  ${m.name}`);
}

function sqliteBounds(db: string): string {
  const h = openSqlite(db);
  try {
    const get = (p: string): unknown => h.prepare(`PRAGMA ${p}`).pluck<unknown>().get();
    return `page_size ${String(get('page_size'))}, cache_size ${String(get('cache_size'))} (a new connection's default), mmap_size ${String(get('mmap_size'))}`;
  } finally {
    h.close();
  }
}

async function main(): Promise<void> {
  requireKernelFeatures();
  const argv = process.argv.slice(2);
  const cfg = { ...readConfig(argv, process.env), pin: false };
  const runs = Number(argv[argv.indexOf('--runs') + 1] ?? 1) || 1;
  const dir = fs.mkdtempSync(path.join(cfg.images.kind === 'dir' ? cfg.images.path : '/var/tmp', 'remapfs-rss-'));
  const lab = new Lab('remapfs-rss-');
  lab.onCleanup(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  try {
    const db = lab.path('scale.db');
    filledPair(lab, dir, 'none', GiB, 64 * MiB, db); // served by the same daemon, as in the scale phase
    filledPair(lab, dir, 'big', 10 * GiB, 4.5 * GiB, db);
    let t = Date.now();
    injectRemaps(db, 'big', Array.from({ length: ENTRIES }, (_, i) => GiB / 4096 + 2 * i));
    console.log(`injected ${ENTRIES} entries in ${((Date.now() - t) / 1000).toFixed(1)} s; SQLite: ${sqliteBounds(db)}`);
    const cell = CELLS.find((c) => c.name === 'rand write 4K QD32');
    if (!cell) throw new Error('no rand write 4K QD32 cell');
    for (let run = 0; run < runs; run++) {
      const mnt = lab.mkdir(`mnt-${run}`);
      const probeFile = lab.path(`probe-${run}.json`);
      const gc = argv.includes('--gc'); // every snapshot after a full GC: what is live, not what waits for collection
      const env = { ...lab.env(), NODE_OPTIONS: `--import=${path.join(HERE_DIR, 'rss-probe.js')}${gc ? ' --expose-gc' : ''}`, RSS_PROBE_FILE: probeFile, RSS_PROBE_GC: gc ? '1' : '0' };
      t = Date.now();
      const d = await lab.startDaemon(mnt, ['--db', db, '--engine', 'native'], env);
      const startSeconds = (Date.now() - t) / 1000;
      const pid = d.child.pid as number;
      const afterStart = statusFields(pid);
      const dev = lab.attachLoop(path.join(mnt, 'big'));
      const r = fio(dev, cell, cfg);
      await sleep(600); // a fresh probe snapshot
      const s = statusFields(pid);
      const probe = JSON.parse(fs.readFileSync(probeFile, 'utf8')) as { memoryUsage: NodeJS.MemoryUsage; heap: { total_heap_size: number; used_heap_size: number; heap_size_limit: number; malloced_memory: number; external_memory: number }; spaces: Record<string, { sizeBytes: number; usedBytes: number }> };
      const statsText = fs.readFileSync(path.join(mnt, '.remapfs', 'big', 'stats'), 'utf8');
      const live = Number(/"routeEntries": (\d+)/.exec(statsText)?.[1] ?? NaN);
      let capacity = 16;
      while (capacity < live * 2 + 2) capacity *= 2;
      const m = probe.memoryUsage;
      console.log(`\nrun ${run + 1}: start-up ${startSeconds.toFixed(2)} s; fio ${cell.name}: ${r.value.toFixed(0)} IOPS`);
      console.log(`VmRSS ${mb(s.VmRSS ?? NaN)} (after start-up ${mb(afterStart.VmRSS ?? NaN)}), VmHWM ${mb(s.VmHWM ?? NaN)}: RssAnon ${mb(s.RssAnon ?? NaN)}, RssFile ${mb(s.RssFile ?? NaN)}, RssShmem ${mb(s.RssShmem ?? NaN)}`);
      console.log(`process.memoryUsage: rss ${mb(m.rss)}, heapTotal ${mb(m.heapTotal)}, heapUsed ${mb(m.heapUsed)}, external ${mb(m.external)}, arrayBuffers ${mb(m.arrayBuffers)}`);
      console.log(`V8: heap limit ${mb(probe.heap.heap_size_limit)}, malloced ${mb(probe.heap.malloced_memory)}; spaces (size/used): ${Object.entries(probe.spaces).map(([k, v]) => `${k} ${mb(v.sizeBytes)}/${mb(v.usedBytes)}`).join(', ')}`);
      console.log(`engine route table: ${live} live entries; ${capacity} slots if last grown at this size: ${mb(capacity * 8)} narrow (8 B a slot, keys and routes below 2^32), ${mb(capacity * 16)} wide`);
      console.log('largest mappings (Rss of size):');
      console.log(topMappings(pid, 30).join('\n'));
      // A first change of the table in force builds its position index (lib/meta/state.ts): what it adds.
      lab.ok(['--db', db, 'remap', 'big', '8']);
      await sleep(600);
      const p2 = JSON.parse(fs.readFileSync(probeFile, 'utf8')) as { memoryUsage: NodeJS.MemoryUsage };
      console.log(`after one remap (sector 8): VmRSS ${mb(statusFields(pid).VmRSS ?? NaN)}, arrayBuffers ${mb(p2.memoryUsage.arrayBuffers)}`);
      detachLoop(dev, path.join(mnt, 'big'));
      lab.ok(['--db', db, 'unmount', mnt]);
      await d.exited;
    }
  } finally {
    await lab.cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`rss-breakdown failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
