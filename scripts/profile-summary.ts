/**
 * Summarises a V8 CPU profile (.cpuprofile, from node --cpu-prof) of the
 * daemon by where its main thread spent the time: waiting for the next
 * request, in the system calls that move the data, in fuse-native's bridge,
 * in remapfs's own code, and so on. Pure: it reads no files.
 */

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  samples: number[];
  timeDeltas: number[];
}

export const CATEGORIES = [
  'idle (waiting for the kernel)',
  'data system calls (pread, pwrite, fdatasync)',
  'fuse-native bridge and Node callbacks',
  'remapfs code',
  'garbage collection',
  'other',
] as const;
export type Category = (typeof CATEGORIES)[number];

const SYSCALLS = new Set(['read', 'writeBuffer', 'writeString', 'fsync', 'fdatasync']);

export function categorise(functionName: string, url: string): Category {
  if (functionName === '(idle)') return 'idle (waiting for the kernel)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (url === '' && SYSCALLS.has(functionName)) return 'data system calls (pread, pwrite, fdatasync)';
  // The lean dispatch's handler is a few lines; its self time is the native call that releases the libfuse thread.
  if (url.includes('fuse-native') || url.includes('/lib/fs/lean-dispatch.') || functionName === 'processTicksAndRejections') return 'fuse-native bridge and Node callbacks';
  if (url.includes('/dist/lib/')) return 'remapfs code';
  return 'other';
}

/** Milliseconds of main-thread time per category. */
export function summarise(profile: CpuProfile): Record<Category, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const out = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i] as number);
    if (!frame) continue;
    out[categorise(frame.functionName, frame.url)] += (profile.timeDeltas[i] ?? 0) / 1000;
  }
  return out;
}
