/**
 * The native engine (libfuse 3, multi-threaded; lib/native/engine.ts): the
 * engine serves reads and writes of pair files in its own threads, straight
 * to the descriptors of the pair's FileDevices, following a routing table
 * that JavaScript alone writes. This adapter:
 *  - creates the engine and adds each pair with its descriptors;
 *  - implements RouteMirror over the engine's fence/publish/setWritesSlow and
 *    attaches it to the pair's RemapDevice, which then keeps the routes
 *    current (remapped → spare, pending and in-progress → slow);
 *  - answers upcalls on the main thread: pair read/write/fsync/fallocate go to
 *    the pair's device through FsOps (the slow path), control-tree requests to
 *    FsOps too. Every upcall is completed exactly once, even when an op throws.
 * A pair joins the engine with its fast path closed, so a request that comes
 * while its routes are being published (a pair added while mounted) waits
 * for JS; the path opens once they are all published. A file with no fast
 * path (the simulator's fault device) never opens it: every request comes
 * here.
 * Pair ids are this adapter's; `ids` and `names` stay inverse of each other.
 * A pair whose disk went away (GoneDevice) leaves the engine at once but
 * stays in `goneIds` until removeFile, so that its handles still open (a loop
 * device) keep counting: the engine keeps its counters until forgetPair.
 */
import * as fs from 'fs';
import type { BlockDevice } from '../block/device.js';
import { GoneDevice } from '../block/gone-device.js';
import { type AdapterOptions, type EngineStats, type FsAdapter, fuseUringOf, ringWorkersOf } from './adapter.js';
import type { EngineApi, EngineHandle, Upcall } from './engine-api.js';
import { type ControlRequest, isControlRequest, type PairRequest } from '../native/engine.js';
import { CONTROL_DIR, ERR, FsOps, type ServedFile } from './ops.js';
import { NO_MIRROR, type RouteMirror } from '../remap/route-mirror.js';
import type { RemapDevice } from '../remap/remap-device.js';

/**
 * Threads of the engine's blocking model (its fallback). 16 against 40 measured
 * the same at queue depth 32 here (within 4%, docs/performance.md), and each
 * locks about 2.6 MiB (pin.c).
 */
const MAX_THREADS = 16;
/** Block size of the routing table for files without a fast path. */
const SLOW_BLOCK_BYTES = 4096;


export class NativeAdapter implements FsAdapter {
  readonly engine = 'native' as const;
  readonly mountpoint: string;
  readonly ops: FsOps;
  private readonly e: EngineHandle;
  private readonly ids = new Map<string, number>();
  /** Pairs taken out of the engine for a GoneDevice whose file is still in the mount: their handles still count. */
  private readonly goneIds = new Map<string, number>();
  private readonly names = new Map<number, string>();
  /** The RemapDevice whose routes each pair id mirrors (detached when the pair leaves the engine). */
  private readonly mirrored = new Map<number, RemapDevice>();
  private nextId = 1;
  private nullFd = -1;
  private mounted = false;

  constructor(
    private readonly api: EngineApi,
    mountpoint: string,
    files: ServedFile[],
    opts: AdapterOptions = {},
  ) {
    this.mountpoint = mountpoint;
    this.ops = new FsOps([], opts.controlTree, opts.onError);
    this.e = api.create({
      mountpoint,
      fsOptions: ['fsname=remapfs', 'subtype=remapfs', ...(opts.extraOptions ?? []).filter((o) => o !== 'direct_io')],
      maxThreads: MAX_THREADS,
      ringWorkers: ringWorkersOf(),
      fuseUring: fuseUringOf(),
      controlDir: opts.controlTree ? CONTROL_DIR : null,
      upcall: (req) => this.upcall(req),
    });
    for (const f of files) this.addFile(f);
  }

  mount(): Promise<void> {
    this.api.mount(this.e);
    this.mounted = true;
    return Promise.resolve();
  }

  unmount(): Promise<void> {
    if (this.mounted) this.api.unmount(this.e);
    this.mounted = false;
    for (const remap of this.mirrored.values()) remap.attachMirror(NO_MIRROR);
    this.mirrored.clear();
    if (this.nullFd >= 0) fs.closeSync(this.nullFd);
    this.nullFd = -1;
    return Promise.resolve();
  }

  addFile(f: ServedFile): void {
    const id = this.nextId++;
    const fast = f.fast;
    const blockSize = fast?.blockSize ?? SLOW_BLOCK_BYTES;
    const nullFd = fast ? -1 : this.slowFd();
    this.api.addPair(this.e, {
      id,
      name: f.name,
      sizeBytes: f.device.sizeBytes,
      blockSize,
      mainFd: fast ? fast.main.ioFd : nullFd,
      spareFd: fast ? fast.spare.ioFd : nullFd,
      direct: fast ? fast.main.writesDirect || fast.spare.writesDirect : false,
      alignBytes: fast ? Math.max(fast.main.directAlignBytes, fast.spare.directAlignBytes) : 1,
      readOnly: false,
    });
    this.ids.set(f.name, id);
    this.names.set(id, f.name);
    this.ops.addFile(f);
    if (!fast) return;
    // RemapDevice.attachMirror publishes every entry of the index, then keeps the engine's routes current.
    fast.remap.attachMirror(this.mirrorOf(id));
    this.mirrored.set(id, fast.remap);
    this.api.openFastPath(this.e, id);
  }

  removeFile(name: string): void {
    const id = this.ids.get(name);
    if (id !== undefined) {
      this.dropPair(name, id);
      this.api.forgetPair(this.e, id); // the engine would keep its counters otherwise (only a gone pair's are wanted)
    }
    const goneId = this.goneIds.get(name);
    if (goneId !== undefined) {
      this.goneIds.delete(name);
      this.api.forgetPair(this.e, goneId);
    }
    this.ops.removeFile(name);
  }

  /** Takes a pair out of the engine; its RemapDevice stops mirroring routes to it. */
  private dropPair(name: string, id: number): void {
    this.mirrored.get(id)?.attachMirror(NO_MIRROR);
    this.mirrored.delete(id);
    this.api.removePair(this.e, id);
    this.ids.delete(name);
    this.names.delete(id);
  }

  /**
   * The slow path answers through `device` from now on (an evacuation's
   * tracking layer, say); the fast path keeps following the routes the pair's
   * RemapDevice publishes. A GoneDevice (the pair's disk went away) drops the
   * pair from the engine instead: its name leaves the directory, and every
   * request on a handle still open fails with EIO, without touching a device.
   */
  replaceDevice(name: string, device: BlockDevice): void {
    const id = this.ids.get(name);
    if (id === undefined) return;
    if (device instanceof GoneDevice) {
      this.dropPair(name, id);
      this.goneIds.set(name, id); // the engine keeps its counters: its handles still open are counted until removeFile
    }
    this.ops.replaceDevice(name, device);
  }

  handlesOn(name: string): number {
    return this.engineStats(name)?.openHandles ?? 0;
  }

  openHandleCount(): number {
    let n = 0;
    for (const name of this.fileNames()) n += this.handlesOn(name);
    return n;
  }

  handlesByFile(): Record<string, number> {
    return Object.fromEntries(this.fileNames().map((name) => [name, this.handlesOn(name)]));
  }

  /** Pairs served, and those gone whose file is still in the mount (removeFile not called yet). */
  private fileNames(): string[] {
    return [...this.ids.keys(), ...this.goneIds.keys()];
  }

  engineStats(name: string): EngineStats | undefined {
    const id = this.ids.get(name) ?? this.goneIds.get(name);
    if (id === undefined) return undefined;
    try {
      return this.api.stats(this.e, id);
    } catch {
      return undefined;
    }
  }

  notices(): string[] {
    return [];
  }

  engineDetails(): Record<string, unknown> | undefined {
    if (!this.mounted) return undefined;
    return { engineVersion: this.api.version(), negotiated: this.api.negotiated(this.e), engineIoFlusher: this.api.ioFlusher(this.e) };
  }

  /** PR_SET_IO_FLUSHER results of the engine's threads. */
  ioFlusher(): { set: number; failed: number; errno: number; pinned: number; pinFailed: number; pinErrno: number } {
    return this.api.ioFlusher(this.e);
  }

  private mirrorOf(id: number): RouteMirror {
    const { api, e } = this;
    return {
      fence: (firstBlock, blockCount) => api.fence(e, id, firstBlock, blockCount),
      publish: (blocks, routes, count) => api.publish(e, id, blocks, routes, count),
      setWritesSlow: (on) => api.setWritesSlow(e, id, on),
    };
  }

  /** A descriptor for files the engine never reads or writes itself (all slow). */
  private slowFd(): number {
    if (this.nullFd < 0) this.nullFd = fs.openSync('/dev/null', 'r+');
    return this.nullFd;
  }

  private upcall(req: Upcall): void {
    let result: number = ERR.EIO;
    let value: unknown;
    try {
      if (isControlRequest(req)) [result, value] = this.controlOp(req);
      else result = this.pairOp(req);
    } catch {
      result = ERR.EIO; // an op must not throw; the engine thread waits for an answer either way
    } finally {
      this.api.complete(req.handle, result, value);
    }
  }

  private pairOp(req: PairRequest): number {
    const name = this.names.get(req.pairId);
    const f = name === undefined ? undefined : this.ops.file(name);
    if (!f) return ERR.EIO;
    switch (req.op) {
      case 'read':
        return this.ops.readFile(f, req.buf as Buffer, req.length, req.offset);
      case 'write':
        return this.ops.writeFile(f, req.buf as Buffer, req.length, req.offset);
      case 'fsync':
        return this.ops.flushFile(f);
      case 'fallocate':
        return this.ops.fallocateFile(f, req.mode, req.offset, req.length);
      default:
        return ERR.EIO;
    }
  }

  private controlOp(req: ControlRequest): [number, unknown] {
    const ops = this.ops;
    const p = req.path;
    switch (req.op) {
      case 'getattr': {
        const a = ops.getattr(p);
        return typeof a === 'number' ? [a, undefined] : [0, a];
      }
      case 'readdir': {
        const r = ops.readdir(p);
        return typeof r === 'number' ? [r, undefined] : [0, r];
      }
      case 'open':
        return [ops.open(p), undefined];
      case 'release':
        return [ops.release(p, req.fh), undefined];
      case 'read':
        return [ops.read(p, req.fh, req.buf as Buffer, req.length, req.offset), undefined];
      case 'write':
        return [ops.write(p, req.fh, req.buf as Buffer, req.length, req.offset), undefined];
      case 'truncate':
        return [ops.truncate(p, req.offset), undefined];
      default:
        return [ERR.EIO, undefined];
    }
  }
}
