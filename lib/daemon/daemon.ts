/**
 * The mount daemon: serves every pair of a database at one mount point, in
 * the foreground, until SIGINT/SIGTERM, `remapfs unmount`, or an external
 * unmount.
 *
 * Invariants: at most one live daemon per database (checked at start under the
 * database write lock, and recorded in the mounts table); the FUSE mount is
 * only taken down when no handle is open (a loop device or a program still
 * holding the file would otherwise see errors), unless forced.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as net from 'net';
import { RemapfsError } from '../errors';
import { Store } from '../store/db';
import { openPair, PairRuntime } from '../remap/pair';
import { pairStatus, remapSectors } from '../remap/ops';
import { FuseAdapter } from '../fs/fuse-adapter';
import { OpenMode } from '../block/file-device';
import { reconcile } from '../meta/reconcile';
import { toVerifyReport } from '../meta/verify';
import { ControlRequest, serve, socketPathFor } from './control';
import { isMountpoint } from './mounts';

export interface DaemonOptions {
  store: Store;
  mountpoint: string;
  mode?: OpenMode;
  log?: (line: string) => void;
}

export class Daemon {
  private readonly store: Store;
  readonly mountpoint: string;
  private readonly log: (line: string) => void;
  private readonly mode: OpenMode;
  private pairs: PairRuntime[] = [];
  private adapter: FuseAdapter | undefined;
  private server: net.Server | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private resolveDone: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(opts: DaemonOptions) {
    this.store = opts.store;
    this.mountpoint = path.resolve(opts.mountpoint);
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
    this.mode = opts.mode ?? 'auto';
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Opens every pair, mounts, and registers; throws with nothing left behind. */
  async start(): Promise<string[]> {
    checkMountpoint(this.mountpoint);
    const records = this.store.listPairs();
    if (records.length === 0) throw new RemapfsError('mount', this.mountpoint, 'the database has no pairs', 'create one with "remapfs init"');
    this.store.transaction(() => {
      const live = this.store.liveMounts().filter((m) => m.pid !== process.pid);
      const other = live[0];
      if (other) {
        throw new RemapfsError('mount', this.mountpoint, `the pairs of this database are already served at ${other.mountpoint} by pid ${other.pid}`, 'unmount that first');
      }
      this.store.putMount({ mountpoint: this.mountpoint, pid: process.pid, socket: socketPathFor(this.mountpoint), startedAt: Date.now() });
    });
    try {
      for (const rec of records) {
        try {
          this.pairs.push(openPair(this.store, rec, this.mode, this.log));
        } catch (err) {
          this.log(`remapfs: skipping pair ${rec.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (this.pairs.length === 0) throw new RemapfsError('mount', this.mountpoint, 'no pair could be opened');
      this.server = await serve(socketPathFor(this.mountpoint), (req) => this.handle(req));
      this.adapter = new FuseAdapter(
        this.mountpoint,
        this.pairs.map((p) => ({ name: p.record.name, device: p.device })),
        { onError: (op, file, err) => this.log(`remapfs: ${op} ${file}: ${err instanceof Error ? err.message : String(err)}`) },
      );
      await this.adapter.mount();
    } catch (err) {
      this.releaseResources();
      throw err instanceof RemapfsError ? err : new RemapfsError('mount', this.mountpoint, err);
    }
    this.watchTimer = setInterval(() => {
      if (!this.stopping && !isMountpoint(this.mountpoint)) {
        this.log(`remapfs: ${this.mountpoint} was unmounted from outside; shutting down`);
        void this.stop(true);
      }
    }, 1000);
    return this.pairs.map((p) => p.record.name);
  }

  /**
   * Unmounts and closes everything. Without force, refuses while handles are
   * open; returns what it did.
   */
  async stop(force: boolean): Promise<void> {
    if (this.stopping) return;
    // A close() just before the request reaches us as an asynchronous RELEASE: give it a moment.
    for (let i = 0; i < 30 && !force && (this.adapter?.openHandleCount() ?? 0) > 0; i++) await sleep(100);
    if (this.stopping) return;
    const handles = this.adapter?.openHandleCount() ?? 0;
    if (handles > 0 && !force) {
      const busy = Object.entries(this.adapter?.handlesByFile() ?? {})
        .filter(([, n]) => n > 0)
        .map(([name, n]) => `${name} (${n})`)
        .join(', ');
      throw new RemapfsError('unmount', this.mountpoint, `busy: open handles on ${busy}`, 'detach loop devices (losetup -d) and close programs using the files first');
    }
    this.stopping = true;
    if (this.watchTimer) clearInterval(this.watchTimer);
    if (this.adapter) {
      try {
        await this.adapter.unmount();
      } catch (err) {
        this.log(`remapfs: unmount ${this.mountpoint}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const p of this.pairs) {
      try {
        p.device.flush();
      } catch (err) {
        this.log(`remapfs: flush ${p.record.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.releaseResources();
    this.resolveDone?.();
  }

  private releaseResources(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.server?.close();
    this.server = undefined;
    for (const p of this.pairs) {
      try {
        p.close();
      } catch {
        // already closed
      }
    }
    this.pairs = [];
    try {
      this.store.deleteMount(this.mountpoint, process.pid);
    } catch {
      // the database may be gone; the row is ignored once this pid is dead
    }
  }

  private runtime(name: string): PairRuntime {
    const rt = this.pairs.find((p) => p.record.name === name);
    if (!rt) throw new RemapfsError('find pair', name, `not served by the daemon at ${this.mountpoint}`, 'its devices were missing when it started');
    return rt;
  }

  private async handle(req: ControlRequest): Promise<unknown> {
    switch (req.op) {
      case 'status':
        return this.pairs.map((p) => ({
          ...pairStatus(this.store, p.record),
          mounted: true,
          mountpoint: this.mountpoint,
          counters: { ...p.device.counters },
          openHandles: this.adapter?.handlesByFile()[p.record.name] ?? 0,
        }));
      case 'remap': {
        const rt = this.runtime(req.pair);
        const results = remapSectors(rt, req.sectors);
        for (const r of results) {
          if (!r.already) this.log(`remapfs: ${req.pair}: block ${r.mainBlock} (sector ${r.sector}) remapped to spare block ${r.spareBlock}, reason manual${r.lostSectors ? `, ${r.lostSectors} unreadable sectors zeroed` : ''}`);
        }
        return results;
      }
      case 'verify': {
        const rt = this.runtime(req.pair);
        const r = reconcile(this.store, rt.record, rt.journal.slots, { write: req.repair, inForce: rt.journal.state, log: this.log });
        return toVerifyReport(rt.record, r);
      }
      case 'shutdown':
        await this.stop(!!req.force);
        return { stopped: true };
      default:
        throw new RemapfsError('control', 'request', `unknown operation ${(req as { op: string }).op}`);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkMountpoint(mountpoint: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mountpoint);
  } catch (err) {
    throw new RemapfsError('mount', mountpoint, err, 'create the directory first');
  }
  if (!st.isDirectory()) throw new RemapfsError('mount', mountpoint, 'not a directory');
  if (isMountpoint(mountpoint)) throw new RemapfsError('mount', mountpoint, 'something is already mounted there');
  if (fs.readdirSync(mountpoint).length > 0) throw new RemapfsError('mount', mountpoint, 'directory is not empty', 'use an empty directory');
}
