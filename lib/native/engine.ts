/**
 * The native engine (binding.gyp target remapfs_engine, native/engine/): a
 * libfuse 3 session whose own threads serve reads and writes of pair files,
 * with JavaScript as control plane and slow path (issue 15). Loading never
 * throws: engineModule() is undefined when the add-on cannot load, and
 * engineUnavailable() says why in one line.
 *
 * Invariants (native/engine/routes.c has the protocol): JS is the only writer
 * of the route table; fence() returns only when no fast request that saw an
 * old route of those blocks is still running; publish() always follows, in a
 * finally. Upcalls arrive on the JS main thread; the engine thread that made
 * one waits until complete() (or unmount, which answers -EIO). The request's
 * buf is engine memory, detached when the upcall is answered.
 *
 * Do not touch the mount from the JS main thread with synchronous calls
 * (fs.*Sync): a request that needs an upcall would wait for this very thread.
 */

import * as fs from 'fs';
import { loadAddon, type Loaded } from './load-addon.js';

export const ROUTE_MAIN = -1;
export const ROUTE_SLOW = -2;

/** An opaque engine, from create(). */
export type EngineHandle = { readonly __remapfsEngine: unique symbol };

export interface EngineOptions {
  mountpoint: string;
  /** -o values, e.g. 'fsname=remapfs', 'allow_other'. */
  fsOptions: string[];
  /** Threads of the blocking model, 1..64 (default 16); in the io_uring model, the cap on its pool (4). */
  maxThreads?: number;
  /** io_uring workers, 0..3: 0 is the blocking model; default one per CPU the process may run on. */
  ringWorkers?: number;
  /** FUSE over io_uring: 1 where the kernel offers it (the default), 0 never (/dev/fuse only). */
  fuseUring?: 0 | 1;
  /** Name of the control directory under the root (its requests are upcalls), or null. */
  controlDir: string | null;
  upcall: (req: EngineRequest) => void;
  /** Count requests in flight per pair (stats().maxInFlight); a shared atomic on the hot path, for tests and bench. */
  countInFlight?: boolean;
}

export interface EnginePair {
  id: number;
  name: string;
  sizeBytes: number;
  blockSize: number;
  mainFd: number;
  /** -1 when the pair has no spare (a spare route then goes to JS). */
  spareFd: number;
  /** The fds are O_DIRECT: fast-path offsets and lengths must be multiples of alignBytes. */
  direct: boolean;
  alignBytes: number;
  readOnly: boolean;
}

export type PairOp = 'read' | 'write' | 'fsync' | 'fallocate';
export type ControlOp = 'getattr' | 'readdir' | 'open' | 'release' | 'read' | 'write' | 'truncate';

/** A request on a pair file that needs JS. result: bytes done, 0, or -errno. */
export interface PairRequest {
  handle: number;
  op: PairOp;
  pairId: number;
  offset: number;
  length: number;
  /** read: fill it; write: the data. Valid only until complete(). Absent for fsync/fallocate. */
  buf?: Buffer;
  /** fallocate mode (FALLOC_FL_*). */
  mode: number;
  why: 'slow' | 'io-error' | 'align' | 'tracked';
}

/** A request on a path under the control directory. truncate: offset is the new size. */
export interface ControlRequest {
  handle: number;
  op: ControlOp;
  path: string;
  fh: number;
  offset: number;
  length: number;
  buf?: Buffer;
}

export type EngineRequest = PairRequest | ControlRequest;

export function isControlRequest(req: EngineRequest): req is ControlRequest {
  return (req as ControlRequest).path !== undefined;
}

export interface EngineStats {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  readErrors: number;
  writeErrors: number;
  flushes: number;
  fallocates: number;
  slowReads: number;
  slowWrites: number;
  fastIoErrors: number;
  /** Ring workers' requests whose device call would have waited (RWF_NOWAIT: EAGAIN), redone on a pool thread. */
  waitRetries: number;
  openHandles: number;
  /** Only counted with countInFlight. */
  inFlight: number;
  maxInFlight: number;
  /** Blocks whose route is not MAIN. */
  routeEntries: number;
}

export interface EngineNegotiated {
  /** false until the kernel's INIT was answered (first access to the mount). */
  init: boolean;
  protoMajor: number;
  protoMinor: number;
  maxWrite: number;
  maxPages: number;
  maxReadahead: number;
  maxBackground: number;
  congestionThreshold: number;
  /** Threads of the blocking model; in the io_uring model, the cap on the pool's threads. */
  maxThreads: number;
  /** io_uring workers serving (0: the blocking model serves), the blocking pool beside them, and why io_uring is not used (errno, 0 when it is or when REMAPFS_ENGINE_IO=blocking). */
  ringWorkers: number;
  poolThreads: number;
  ringErrno: number;
  /** FUSE over io_uring: entries registered with the kernel (0: requests come through /dev/fuse), why not (errno: EOPNOTSUPP when the kernel does not offer it), and requests that came through an entry. */
  fuseUringEntries: number;
  /** The entries the ring workers have for a busy queue to take (all pinned); fuseUringEntries of them are registered. */
  fuseUringEntriesMax: number;
  fuseUringErrno: number;
  fuseUringRequests: number;
  asyncDio: boolean;
  /** FOPEN_PARALLEL_DIRECT_WRITES is set on pair opens; true when the kernel speaks 7.38+. */
  parallelDirectWrites: boolean;
}

export interface EngineModule {
  version(): string;
  create(opts: EngineOptions): EngineHandle;
  /** The pair starts with its fast path closed: every read, write and fallocate goes to JS until openFastPath. */
  addPair(e: EngineHandle, pair: EnginePair): void;
  /** The name leaves the directory; later requests on open handles get EIO. The fds may be closed when it returns. */
  removePair(e: EngineHandle, id: number): void;
  /** Drops a removed pair for good: until then, stats() still answers for it (its handles still open). */
  forgetPair(e: EngineHandle, id: number): void;
  mount(e: EngineHandle): void;
  /** Idempotent; answers outstanding upcalls with -EIO; joins the engine threads. */
  unmount(e: EngineHandle): void;
  fence(e: EngineHandle, id: number, firstBlock: number, blockCount: number): void;
  publish(e: EngineHandle, id: number, blocks: Float64Array, routes: Float64Array, count: number): void;
  setWritesSlow(e: EngineHandle, id: number, on: boolean): void;
  /** Lets engine threads serve the pair by its routes: call once, after publishing every route that is not MAIN. */
  openFastPath(e: EngineHandle, id: number): void;
  /** A served pair's counters, or a removed one's until forgetPair. */
  stats(e: EngineHandle, id: number): EngineStats;
  ioFlusher(e: EngineHandle): { set: number; failed: number; errno: number; pinned: number; pinFailed: number; pinErrno: number };
  negotiated(e: EngineHandle): EngineNegotiated;
  /** Answers one upcall; false when it was already answered (e.g. by unmount). */
  complete(handle: number, result: number, value?: unknown): boolean;
}

const FUNCTIONS = ['version', 'create', 'addPair', 'removePair', 'forgetPair', 'mount', 'unmount', 'fence', 'publish', 'setWritesSlow', 'openFastPath', 'stats', 'ioFlusher', 'negotiated', 'complete'] as const;

let loaded: Loaded<EngineModule> | undefined;

function load(): Loaded<EngineModule> {
  if (loaded) return loaded;
  if (!fs.existsSync('/dev/fuse')) return (loaded = { mod: undefined, error: '/dev/fuse is missing (modprobe fuse)' });
  return (loaded = loadAddon<EngineModule>('remapfs_engine.node', FUNCTIONS, 'run scripts/setup.sh to build it; it needs libfuse3-dev'));
}

/** undefined when the engine cannot load; engineUnavailable() says why. */
export function engineModule(): EngineModule | undefined {
  return load().mod;
}

/** One line saying why the engine cannot load, or undefined when it loads. */
export function engineUnavailable(): string | undefined {
  return load().error;
}
