/**
 * The native engine as the adapter uses it (the contract in
 * docs/architecture.md, "Native engine"; the add-on is
 * build/Release/remapfs_engine.node, loaded by lib/native/engine.ts).
 * Types only, plus the one place that loads it.
 */
import type { EngineStats } from './adapter';

export type EngineHandle = object;

export interface EnginePair {
  id: number;
  name: string;
  sizeBytes: number;
  blockSize: number;
  mainFd: number;
  spareFd: number;
  direct: boolean;
  alignBytes: number;
  readOnly: boolean;
}

/** One request handed to JavaScript; answered with complete(). */
export interface Upcall {
  handle: unknown;
  op: string;
  /** Pair requests. */
  pairId?: number;
  /** Control-tree requests (paths under /<controlDir>). */
  path?: string;
  fh?: number;
  offset: number;
  length: number;
  buf?: Buffer;
  mode?: number;
  why?: string;
}

export interface EngineApi {
  version(): string;
  create(opts: { mountpoint: string; fsOptions: string[]; maxThreads: number; controlDir: string | null; upcall: (req: Upcall) => void }): EngineHandle;
  addPair(e: EngineHandle, pair: EnginePair): void;
  removePair(e: EngineHandle, id: number): void;
  mount(e: EngineHandle): void;
  unmount(e: EngineHandle): void;
  fence(e: EngineHandle, id: number, firstBlock: number, blockCount: number): void;
  publish(e: EngineHandle, id: number, blocks: Float64Array, routes: Float64Array, count: number): void;
  setWritesSlow(e: EngineHandle, id: number, on: boolean): void;
  stats(e: EngineHandle, id: number): EngineStats;
  ioFlusher(e: EngineHandle): { set: number; failed: number; errno: number };
  complete(handle: unknown, result: number, value?: unknown): void;
}

/** The engine, or why it cannot be used here (one line). */
export function loadEngine(): EngineApi | string {
  try {
    // MERGE POINT (engine branch): lib/native/engine.ts loads the add-on.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('../native/engine') as { loadEngine?: () => EngineApi | string; engine?: EngineApi };
    if (typeof mod.loadEngine === 'function') return mod.loadEngine();
    if (mod.engine) return mod.engine;
    return 'lib/native/engine has no loader';
  } catch (err) {
    return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown reason';
  }
}
