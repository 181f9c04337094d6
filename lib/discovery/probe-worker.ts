/**
 * The discovery worker thread (started by background.ts): probes the
 * candidates it is sent (probe.ts) and posts back what it found and its
 * cumulative counters. It holds the ProbeCache for its whole life, so a
 * candidate that did not change is not read again. Requests come one at a
 * time; nothing here touches the store or any device for writing.
 */
import { parentPort, workerData } from 'worker_threads';
import { newProbeStats, ProbeCache, probeCandidates, type Probed, type ProbeStats, type TablesFor } from './probe.js';

export interface ProbeRequest {
  id: number;
  paths: string[];
  tablesFor: TablesFor;
}

export type ProbeReply = { id: number; ok: true; found: Probed[]; stats: ProbeStats; cached: number } | { id: number; ok: false; error: string };

/** workerData that marks this module's thread as the discovery worker. */
export const WORKER_MARK = 'remapfs-discovery-worker';

if (parentPort && workerData === WORKER_MARK) {
  const port = parentPort;
  const cache = new ProbeCache();
  const stats = newProbeStats();
  port.on('message', (req: ProbeRequest) => {
    let reply: ProbeReply;
    try {
      const found = probeCandidates(req.paths, req.tablesFor, cache, stats);
      reply = { id: req.id, ok: true, found, stats: { ...stats }, cached: cache.size };
    } catch (err) {
      reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
}
