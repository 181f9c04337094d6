/**
 * The disk's own share of d/c (pure): the device calls that the native engine makes for sequential requests
 * over a remap table, written as fio iologs, so the bench can replay them on the pair's files with no FUSE and
 * no daemon and compare them with the same requests unsplit.
 *
 * A request becomes the runs of lib/remap/split.ts, grouped as native/engine/routes.c's rt_chain groups them:
 * a run that continues the last run on its device joins that call (a vectored call), while the request's
 * iovecs last (RING_VEC). With 1% of blocks remapped one in every 100, a 1 MiB request is 3-4 main calls and one
 * spare call, where it was one main call.
 */
import { type SpareLookup, RunList, splitRange, TARGET_SPARE } from '../../lib/remap/split.js';

/** native/engine/ring_i.h's RING_VEC: iovecs per request for grouped runs. */
export const RING_VEC = 16;

export interface DeviceCall {
  device: 'main' | 'spare';
  byteOffset: number;
  bytes: number;
}

/** The device calls of one request of [byteOffset, byteOffset + bytes), in the order the engine queues them. */
export function requestCalls(byteOffset: number, bytes: number, blockSize: number, lookup: SpareLookup): DeviceCall[] {
  const runs = new RunList();
  const n = splitRange(byteOffset, bytes, blockSize, lookup, runs);
  const calls: DeviceCall[] = [];
  const tail: Array<DeviceCall | undefined> = [undefined, undefined];
  const size = [0, 0];
  let vec = 0;
  for (let i = 0; i < n; i++) {
    const d = runs.target[i] === TARGET_SPARE ? 1 : 0;
    const deviceOffset = runs.deviceOffset[i] as number;
    const len = runs.byteLength[i] as number;
    const t = tail[d];
    const cost = size[d] === 1 ? 2 : 1;
    if (t && t.byteOffset + t.bytes === deviceOffset && vec + cost <= RING_VEC) {
      t.bytes += len;
      size[d] = (size[d] as number) + 1;
      vec += cost;
      continue;
    }
    const call: DeviceCall = { device: d ? 'spare' : 'main', byteOffset: deviceOffset, bytes: len };
    calls.push(call);
    tail[d] = call;
    size[d] = 1;
  }
  return calls;
}

/** Sequential requests of requestBytes over [0, regionBytes), `passes` times: every device call, in order. */
export function sequentialCalls(regionBytes: number, requestBytes: number, passes: number, blockSize: number, lookup: SpareLookup): DeviceCall[] {
  const out: DeviceCall[] = [];
  for (let pass = 0; pass < passes; pass++) {
    for (let at = 0; at + requestBytes <= regionBytes; at += requestBytes) out.push(...requestCalls(at, requestBytes, blockSize, lookup));
  }
  return out;
}

/** A lookup over a plain table of main block → spare block. */
export function tableLookup(table: ReadonlyMap<number, number>): SpareLookup {
  return { remappedCount: table.size, spareBlockOf: (mainBlock) => table.get(mainBlock) ?? -1 };
}

/** fio's iolog version 2: the files, then one line per call. */
export function iolog(calls: readonly DeviceCall[], files: { main: string; spare: string }, action: 'read' | 'write'): string {
  for (const f of [files.main, files.spare]) if (/\s/.test(f)) throw new Error(`iolog: a path with white space: ${f}`);
  const lines = ['fio version 2 iolog', `${files.main} add`, `${files.spare} add`, `${files.main} open`, `${files.spare} open`];
  for (const c of calls) lines.push(`${files[c.device]} ${action} ${c.byteOffset} ${c.bytes}`);
  lines.push(`${files.main} close`, `${files.spare} close`, '');
  return lines.join('\n');
}

/** The queue depth at which a replay of `calls` keeps as many requests in flight as fio's `depth` did. */
export function replayDepth(calls: number, requests: number, depth: number): number {
  return requests > 0 ? Math.max(depth, Math.round((depth * calls) / requests)) : depth;
}
