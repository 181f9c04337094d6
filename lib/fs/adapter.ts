/**
 * What the daemon and the simulator see of a FUSE engine (FsAdapter), and the
 * engine choice: `native` (lib/native/engine.ts, libfuse 3, data served in its
 * own threads) wherever it loads, else `fuse-native` (libfuse 2, every request
 * on the Node main thread), with one line saying why. Both adapters answer
 * through the same FsOps (ops.ts), so behaviour and errno values are the same.
 */
import type { BlockDevice } from '../block/device.js';
import type { ControlTree, ServedFile } from './ops.js';
import type { EngineApi } from './engine-api.js';
import type { EngineStats as NativeEngineStats } from '../native/engine.js';
import type { IoCounters } from '../remap/remap-device.js';

export type EngineName = 'native' | 'fuse-native';
export const ENGINES: readonly EngineName[] = ['native', 'fuse-native'];
/** The environment variable that names the engine when `--engine` is not given. */
export const ENGINE_ENV = 'REMAPFS_ENGINE';

/** The native engine's counters of one pair file, summed over its threads. */
export type EngineStats = NativeEngineStats;

/**
 * The pair file's request counters as users see them (pure): with the native
 * engine every request is counted by the engine (those it hands to JS too),
 * while the device counts only the ones JS answered; what only JS decides
 * (remaps, weak reads, errors before recovery) stays the device's.
 */
export function servedCounters(device: IoCounters, engine: EngineStats | undefined): IoCounters {
  if (!engine) return { ...device };
  const { readOps, writeOps, readBytes, writeBytes, readErrors, writeErrors, flushes } = engine;
  return { ...device, readOps, writeOps, readBytes, writeBytes, readErrors, writeErrors, flushes };
}

export interface AdapterOptions {
  /** Files under /.remapfs (live monitoring and settings). */
  controlTree?: ControlTree;
  /** Called once per failed request with the original error (not on the hot path). */
  onError?: (op: string, file: string, err: unknown) => void;
  /** Extra -o options, e.g. 'direct_io'. */
  extraOptions?: string[];
}

export interface FsAdapter {
  readonly engine: EngineName;
  readonly mountpoint: string;
  mount(): Promise<void>;
  /** Unmounts (lazily) and stops the engine. Callers check openHandleCount() first. */
  unmount(): Promise<void>;
  /** Serves one more file (hot-plug). */
  addFile(f: ServedFile): void;
  /** Stops serving a file; callers make sure no handle is open on it. */
  removeFile(name: string): void;
  /** Swaps the device behind a served file (e.g. for one that fails every request after its disk left). */
  replaceDevice(name: string, device: BlockDevice): void;
  handlesOn(name: string): number;
  openHandleCount(): number;
  handlesByFile(): Record<string, number>;
  /** The engine's own counters of a file (undefined with fuse-native, whose requests all reach the device's counters). */
  engineStats(name: string): EngineStats | undefined;
  /** Lines worth logging once the adapter exists (a fallback it took, say). */
  notices(): string[];
  /** What the engine negotiated with the kernel and how its threads fared (undefined with fuse-native). */
  engineDetails(): Record<string, unknown> | undefined;
}

/** Parses an engine name (from --engine or REMAPFS_ENGINE); undefined when it is not one. */
export function parseEngine(text: string | undefined): EngineName | undefined {
  return ENGINES.find((e) => e === text);
}

export interface EngineChoice {
  engine: EngineName;
  api?: EngineApi;
  /** One line saying why native was wanted but fuse-native serves; undefined when the wish was met. */
  fallback?: string;
}

/**
 * Decides the engine: `want` (default native); native needs `load()` to return
 * the engine, else (a string: why not) fuse-native serves and `fallback` says why.
 */
export function chooseEngine(want: EngineName | undefined, load: () => EngineApi | string): EngineChoice {
  if (want === 'fuse-native') return { engine: 'fuse-native' };
  let api: EngineApi | string;
  try {
    api = load();
  } catch (err) {
    api = err instanceof Error ? err.message : String(err);
  }
  if (typeof api !== 'string') return { engine: 'native', api };
  const why = api.split('\n')[0]?.trim() || 'unknown reason';
  return { engine: 'fuse-native', fallback: `remapfs: the native engine cannot load (${why}); using fuse-native` };
}

/** Chooses the native engine's io model: io_uring workers (the default) or its blocking thread pool. */
export const ENGINE_IO_ENV = 'REMAPFS_ENGINE_IO';
export const ENGINE_IO_MODELS = ['io_uring', 'blocking'] as const;

/**
 * Chooses how the native engine's ring workers take requests from the kernel: `auto` uses FUSE over io_uring where
 * the kernel offers it (Linux 6.14+ with fuse.enable_uring=Y), `dev` always reads /dev/fuse.
 */
export const ENGINE_TRANSPORT_ENV = 'REMAPFS_ENGINE_TRANSPORT';
export const ENGINE_TRANSPORTS = ['auto', 'dev'] as const;

/** The native engine's fuseUring option (1 where the kernel offers it, 0 never); throws on a bad value. */
export function fuseUringOf(env: NodeJS.ProcessEnv = process.env): 0 | 1 {
  const t = env[ENGINE_TRANSPORT_ENV];
  if (t === undefined || t === '' || t === 'auto') return 1;
  if (t === 'dev') return 0;
  throw new Error(`${ENGINE_TRANSPORT_ENV}=${t} is not a transport (use ${ENGINE_TRANSPORTS.join(' or ')})`);
}

/** The native engine's ringWorkers: undefined (one per CPU) unless env asks for the blocking model (0); throws on a bad value. */
export function ringWorkersOf(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const io = env[ENGINE_IO_ENV];
  if (io === undefined || io === '' || io === 'io_uring') return undefined;
  if (io === 'blocking') return 0;
  throw new Error(`${ENGINE_IO_ENV}=${io} is not an io model (use ${ENGINE_IO_MODELS.join(' or ')})`);
}
