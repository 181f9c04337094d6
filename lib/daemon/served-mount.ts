/**
 * ServedMount: the life of one FUSE mount with its control socket, shared by
 * the remapfs daemon and the fault simulator. It mounts, answers control
 * requests (shutdown itself, the rest through `handle`), notices an unmount
 * from outside, and only takes the mount down when no handle is open (a loop
 * device or a program still holding a file would otherwise see errors),
 * unless forced. The FUSE engine is chosen here (lib/fs/adapter.ts): native
 * where it loads, else fuse-native with one line saying why.
 */
import * as fs from 'fs';
import type * as net from 'net';
import { RemapfsError } from '../errors.js';
import type { ControlTree, ServedFile } from '../fs/ops.js';
import type { EngineName, FsAdapter } from '../fs/adapter.js';
import { createAdapter } from '../fs/serve.js';
import type { PairRuntime } from '../pair/pair.js';
import { type ControlRequest, serve, socketPathFor } from './control.js';
import { enableIoFlusher } from '../native/io-flusher.js';
import { isMountpoint } from './mounts.js';
import { isKnownFailure } from '../block/disk-error.js';

export interface ServedMountOptions {
  /** Absolute path. */
  mountpoint: string;
  files: ServedFile[];
  extraOptions?: string[];
  /** The FUSE engine wanted (default native; fuse-native when native cannot load). */
  engine?: EngineName;
  controlTree?: ControlTree;
  log: (line: string) => void;
  /** Answers a control request (a value, or a promise of one). */
  handle: (req: ControlRequest) => unknown;
  /** Runs at the start of every stop, before the busy check (the daemon detaches its loop devices there). */
  beforeStop?: (force: boolean) => Promise<void>;
  /** Runs once after the unmount (or a failed start): flush and close devices. */
  release: () => void;
  /** Start-up notices (PR_SET_IO_FLUSHER missing); `log` when not given. */
  notice?: (line: string) => void;
}

export class ServedMount {
  readonly mountpoint: string;
  readonly socketPath: string;
  readonly adapter: FsAdapter;
  readonly done: Promise<void>;
  private readonly opts: ServedMountOptions;
  private server: net.Server | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private released = false;
  private resolveDone: (() => void) | undefined;

  constructor(opts: ServedMountOptions) {
    this.opts = opts;
    this.mountpoint = opts.mountpoint;
    this.socketPath = socketPathFor(opts.mountpoint);
    const limiter = new LogLimiter(opts.log);
    const { adapter, fallback } = createAdapter(opts.engine, opts.mountpoint, opts.files, {
      onError: (op, file, err) => limiter.log(failureLine(op, file, err)),
      ...(opts.extraOptions ? { extraOptions: opts.extraOptions } : {}),
      ...(opts.controlTree ? { controlTree: opts.controlTree } : {}),
    });
    this.adapter = adapter;
    for (const line of [...(fallback ? [fallback] : []), ...adapter.notices()]) (opts.notice ?? opts.log)(line);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  async start(): Promise<void> {
    try {
      checkMountpoint(this.mountpoint);
      // On the main thread, before fuse-native and libfuse start their threads: they inherit it.
      enableIoFlusher(this.opts.notice ?? this.opts.log);
      this.server = await serve(this.socketPath, (req) => (req.op === 'shutdown' ? this.stop(!!req.force).then(() => ({ stopped: true })) : this.opts.handle(req)));
      await this.adapter.mount();
    } catch (err) {
      this.release();
      throw err instanceof RemapfsError ? err : new RemapfsError('mount', this.mountpoint, err);
    }
    this.watchTimer = setInterval(() => {
      if (!this.stopping && !isMountpoint(this.mountpoint)) {
        this.opts.log(`remapfs: ${this.mountpoint} was unmounted from outside; shutting down`);
        void this.stop(true);
      }
    }, 1000);
  }

  /** Unmounts and releases everything; without force, refuses while handles are open. */
  async stop(force: boolean): Promise<void> {
    if (this.stopping) return;
    await this.opts.beforeStop?.(force);
    // A close() just before the request reaches us as an asynchronous RELEASE: give it a moment.
    for (let i = 0; i < 30 && !force && this.adapter.openHandleCount() > 0; i++) await sleep(100);
    if (this.stopping) return;
    if (this.adapter.openHandleCount() > 0 && !force) {
      const busy = Object.entries(this.adapter.handlesByFile())
        .filter(([, n]) => n > 0)
        .map(([name, n]) => `${name} (${n})`)
        .join(', ');
      throw new RemapfsError('unmount', this.mountpoint, `busy: open handles on ${busy}`, 'detach loop devices (losetup -d) and close programs using the files first');
    }
    this.stopping = true;
    try {
      await this.adapter.unmount();
    } catch (err) {
      this.opts.log(`remapfs: unmount ${this.mountpoint}: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.release();
    this.resolveDone?.();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.server?.close();
    this.server = undefined;
    this.opts.release();
  }
}

/** The log line of a failed request; one that is neither a disk error nor a RemapfsError is a bug (with where it was thrown). */
export function failureLine(op: string, file: string, err: unknown): string {
  if (isKnownFailure(err)) return `remapfs: ${op} ${file}: ${err instanceof Error ? err.message : String(err)}`;
  const where = err instanceof Error ? (err.stack?.split('\n').find((l) => l.trim().startsWith('at ')) ?? '').trim() : '';
  return `remapfs: bug: ${op} ${file}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}${where ? ` (${where})` : ''}`;
}

/** At most `burst` lines per window; then one line saying how many were dropped. */
export class LogLimiter {
  private windowStart = 0;
  private count = 0;
  private dropped = 0;

  constructor(
    private readonly sink: (line: string) => void,
    private readonly burst = 10,
    private readonly windowMs = 10000,
    private readonly now: () => number = Date.now,
  ) {}

  log(line: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.dropped > 0) this.sink(`remapfs: ${this.dropped} more I/O error messages were suppressed`);
      this.windowStart = t;
      this.count = 0;
      this.dropped = 0;
    }
    if (this.count < this.burst) {
      this.count++;
      this.sink(line);
    } else {
      this.dropped++;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A pair's file as served: its virtual device, and the descriptors a native data path reads and writes. */
export function servedPairFile(rt: PairRuntime): ServedFile {
  return { name: rt.record.name, device: rt.device, fast: { main: rt.main, spare: rt.spare, blockSize: rt.record.blockSize, remap: rt.device } };
}

export function checkMountpoint(mountpoint: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mountpoint);
  } catch (err) {
    // A FUSE mount whose server died answers every access with ENOTCONN.
    if ((err as { code?: unknown }).code === 'ENOTCONN') throw new RemapfsError('mount', mountpoint, 'a dead mount is still there (its server has died)', `run "remapfs recover ${mountpoint}" first`);
    throw new RemapfsError('mount', mountpoint, err, 'create the directory first');
  }
  if (!st.isDirectory()) throw new RemapfsError('mount', mountpoint, 'not a directory');
  if (isMountpoint(mountpoint)) throw new RemapfsError('mount', mountpoint, 'something is already mounted there');
  if (fs.readdirSync(mountpoint).length > 0) throw new RemapfsError('mount', mountpoint, 'directory is not empty', 'use an empty directory');
}
