/**
 * Loaded into a remapfs daemon with NODE_OPTIONS=--import=<this file> by scripts/rss-breakdown.ts: every
 * 200 ms it writes the daemon's own view of its memory (process.memoryUsage and V8's heap spaces) as JSON to
 * $RSS_PROBE_FILE (after a full GC with RSS_PROBE_GC=1). Measurement only; remapfs itself never loads it.
 */
import * as fs from 'fs';
import * as v8 from 'v8';

const file = process.env.RSS_PROBE_FILE;
if (file) {
  // With RSS_PROBE_GC=1 (and --expose-gc) each snapshot follows a full collection: live memory only.
  const collect = process.env.RSS_PROBE_GC === '1' ? (globalThis as { gc?: () => void }).gc : undefined;
  const write = (): void => {
    collect?.();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { sizeBytes: s.space_size, usedBytes: s.space_used_size }]));
    const snapshot = { time: Date.now(), memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics(), spaces };
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    fs.renameSync(`${file}.tmp`, file);
  };
  setInterval(write, 200).unref();
}
