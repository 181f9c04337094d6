/**
 * The discovery worker thread (started by background.ts): probes the
 * candidates it is sent (probe.ts) and posts back what it found and its
 * cumulative counters; or reads and validates one spare's table for an
 * import (readAdoptedTable) and posts it back, its entry pages transferred,
 * not copied. It holds the ProbeCache for its whole life, so a candidate
 * that did not change is not read again. Requests come one at a time; nothing
 * here touches the store or any device for writing.
 */
import { parentPort, workerData } from 'worker_threads';
import { FileDevice } from '../block/file-device.js';
import { type AdoptedTable, readAdoptedTable } from '../meta/locate.js';
import { newProbeStats, ProbeCache, probeCandidates, type Probed, type ProbeStats, type TablesFor } from './probe.js';

export type ProbeRequest = { id: number; kind?: 'probe'; paths: string[]; tablesFor: TablesFor } | { id: number; kind: 'table'; sparePath: string };

/** A table read for an import: the table, or why the spare holds none. */
export type TableRead = { table: AdoptedTable } | { rejected: string[] };

export type ProbeReply =
  | { id: number; ok: true; kind?: 'probe'; found: Probed[]; stats: ProbeStats; cached: number }
  | { id: number; ok: true; kind: 'table'; read: TableRead }
  | { id: number; ok: false; error: string };

/** workerData that marks this module's thread as the discovery worker. */
export const WORKER_MARK = 'remapfs-discovery-worker';

/** Reads a spare's table for an import (in the worker, or inline where there is none). */
export function readTableOf(sparePath: string): TableRead {
  const dev = FileDevice.open(sparePath, { readOnly: true, mode: 'buffered' });
  try {
    return readAdoptedTable(dev);
  } finally {
    dev.close();
  }
}

if (parentPort && workerData === WORKER_MARK) {
  const port = parentPort;
  const cache = new ProbeCache();
  const stats = newProbeStats();
  port.on('message', (req: ProbeRequest) => {
    let reply: ProbeReply;
    const transfer: ArrayBuffer[] = [];
    try {
      if (req.kind === 'table') {
        const read = readTableOf(req.sparePath);
        if ('table' in read) transfer.push(read.table.pages.buffer as ArrayBuffer, read.table.historyOrder.buffer as ArrayBuffer);
        reply = { id: req.id, ok: true, kind: 'table', read };
      } else {
        const found = probeCandidates(req.paths, req.tablesFor, cache, stats);
        reply = { id: req.id, ok: true, found, stats: { ...stats }, cached: cache.size };
      }
    } catch (err) {
      reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply, transfer);
  });
}
