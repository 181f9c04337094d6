/**
 * The mount daemon: serves the pairs of a database at one mount point.
 *
 * Invariants: at most one live daemon per database (checked at start under the
 * database write lock, and recorded in the mounts table); every pair it serves
 * was checked (main label, spare metadata) and reconciled when opened; on the
 * way out both devices of every pair are flushed.
 *
 * Layout by concern: this file is the served pairs' lifecycle (start, open,
 * release) and control dispatch; hotplug.ts attaches and detaches pairs as
 * their devices come and go (with watch directories); loops.ts puts served
 * files on loop devices (--attach) and detaches them at every stop; each
 * served pair's settings, scanner and control files are a PairService
 * (pair-service.ts), seen by operations as a PairHost (served-host.ts).
 *
 * Control dispatch: a request, already checked against lib/pair/operations.ts
 * by control.ts, runs the run() of its operation against the served pair's
 * host; there is no switch per operation. Requests run on the event loop,
 * between FUSE requests.
 *
 * Database watch: the store checks before every transaction, and a timer every
 * few seconds, that its path still names the file opened (dev/ino). Once it
 * was deleted or replaced, every metadata change is refused: a write that
 * needs a remap fails with EIO instead of being acknowledged on a remap that
 * only the orphaned file would hold. (The slots alone would be durable, but
 * the daemon could no longer keep the two stores in agreement, and a
 * replacement database may describe other pairs.) Writes that need no remap
 * go on. `status`, the stats control file and the log say so.
 * With attach (remapfs mount --attach), each pair served is put on a loop
 * device linked as /dev/remapfs/<pair> (attach.ts). Every stop first detaches
 * the linked loop devices on its files (--attach's and remapfs attach's); a
 * stop that is not forced is refused while one is mounted.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RemapfsError } from '../errors.js';
import { databaseError, type PairRecord, type Store } from '../store/db.js';
import { openPairSteps } from '../pair/pair.js';
import { runNow, runStepped, type StepStats, type Steps } from '../discovery/steps.js';
import type { PairHost } from '../pair/host.js';
import { identify, type OpenMode } from '../block/file-device.js';
import { type ControlRequest, socketPathFor } from './control.js';
import { checkMountpoint, ServedMount, servedPairFile } from './served-mount.js';
import { PairService } from './pair-service.js';
import { CONTROL_DIR, type ControlTree } from '../fs/ops.js';
import { type EngineName, servedCounters } from '../fs/adapter.js';
import type { IoCounters } from '../remap/remap-device.js';
import { type Attached, type DaemonPairs, HotPlug, type OpenOptions } from './hotplug.js';
import { attachLoop, detachLoops } from './loops.js';
import { dispatch, servedHost, unservedHost } from './served-host.js';
import { recordFileIds } from '../discovery/file-ids.js';

export type { ScanStatus } from '../pair/host.js';

export interface DaemonOptions {
  store: Store;
  mountpoint: string;
  mode?: OpenMode;
  /** Directories to watch for pairs' image files (hot-plug); /dev is watched too when any is given. */
  watchDirs?: string[];
  /** The FUSE engine wanted (default native; fuse-native when native cannot load). */
  engine?: EngineName;
  /** Attach every pair served to a loop device linked as /dev/remapfs/<pair>, and detach them on stop. */
  attach?: boolean;
  log?: (line: string) => void;
}

/** How long a starting daemon waits for a CLI command that holds a pair's devices. */
const START_LOCK_WAIT_MS = 60000;
const DB_CHECK_MS = 2000;

export class Daemon implements DaemonPairs {
  readonly mountpoint: string;
  readonly store: Store;
  readonly watchDirs: readonly string[];
  readonly gone = new Set<string>();
  readonly notOpened = new Map<string, string>();
  private readonly opts: DaemonOptions;
  private readonly logLine: (line: string) => void;
  private pairs: Attached[] = [];
  private servedMount: ServedMount | undefined;
  private readonly hotplug: HotPlug;
  private dbTimer: NodeJS.Timeout | undefined;

  constructor(opts: DaemonOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.mountpoint = path.resolve(opts.mountpoint);
    this.watchDirs = opts.watchDirs ?? [];
    this.logLine = opts.log ?? ((line) => process.stderr.write(line + '\n'));
    this.hotplug = new HotPlug(this);
  }

  get done(): Promise<void> {
    return this.servedMount?.done ?? Promise.resolve();
  }

  private get hotplugOn(): boolean {
    return this.watchDirs.length > 0;
  }

  log(line: string): void {
    this.logLine(line);
  }

  served(): ServedMount | undefined {
    return this.servedMount;
  }

  attached(): readonly Attached[] {
    return this.pairs;
  }

  /** Opens the pairs, mounts, and registers; throws with nothing left behind. */
  async start(): Promise<string[]> {
    checkMountpoint(this.mountpoint);
    for (const d of this.watchDirs) {
      if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new RemapfsError('watch', d, 'not a directory');
    }
    const records = this.store.pairs.list();
    if (records.length === 0 && !this.hotplugOn) throw new RemapfsError('mount', this.mountpoint, 'the database has no pairs', 'create one with "remapfs init"');
    this.store.transaction(() => {
      const other = this.store.mounts.live().find((m) => m.pid !== process.pid);
      if (other) {
        throw new RemapfsError('mount', this.mountpoint, `the pairs of this database are already served at ${other.mountpoint} by pid ${other.pid}`, 'unmount that first');
      }
      this.store.mounts.put({ mountpoint: this.mountpoint, pid: process.pid, socket: socketPathFor(this.mountpoint), startedAt: Date.now() });
    });
    try {
      for (const rec of records) {
        // A CLI command working on the pair finishes first: the daemon reconciles what it left.
        const a = this.tryOpen(rec, { lockWaitMs: START_LOCK_WAIT_MS });
        if (a) this.pairs.push(a);
      }
      if (this.pairs.length === 0 && !this.hotplugOn) throw new RemapfsError('mount', this.mountpoint, 'no pair could be opened');
    } catch (err) {
      this.release();
      throw err;
    }
    this.servedMount = new ServedMount({
      mountpoint: this.mountpoint,
      files: this.pairs.map((a) => servedPairFile(a.svc.rt)),
      controlTree: this.controlTree(),
      ...(this.opts.engine ? { engine: this.opts.engine } : {}),
      log: this.logLine,
      handle: (req) => this.handle(req),
      beforeStop: (force) => detachLoops(this.mountpoint, [...this.pairs.map((a) => a.svc.name), ...this.gone], force, this.logLine),
      release: () => this.release(),
    });
    await this.servedMount.start();
    for (const a of this.pairs) a.svc.engineInfo = () => this.engineInfo(a.svc.name);
    this.store.watchFile();
    this.dbTimer = setInterval(() => this.checkDatabase(), DB_CHECK_MS);
    this.dbTimer.unref();
    for (const a of this.pairs) a.svc.start();
    if (this.opts.attach) for (const a of this.pairs) await this.loop(a);
    if (this.hotplugOn) this.hotplug.start();
    return this.pairs.map((a) => a.svc.name);
  }

  stop(force: boolean): Promise<void> {
    return this.servedMount ? this.servedMount.stop(force) : Promise.resolve();
  }

  /** Detaches pairs whose devices left, and attaches pairs whose devices are all present (hotplug.ts). */
  rescan(): void {
    this.hotplug.rescan();
  }

  tryOpen(rec: PairRecord, opts: OpenOptions = {}): Attached | undefined {
    return runNow(this.openSteps(rec, opts));
  }

  /** tryOpen with the event loop turning while the pair's index is built (hot-plug); `stopped` ends it early. */
  tryOpenStepped(rec: PairRecord, opts: OpenOptions, stopped: () => boolean): Promise<{ value: Attached | undefined; stats: StepStats }> {
    return runStepped(this.openSteps(rec, opts), { stopped, op: 'open pair', object: rec.name });
  }

  private *openSteps(rec: PairRecord, opts: OpenOptions): Steps<Attached | undefined> {
    try {
      const rt = yield* openPairSteps(this.store, rec, { mode: this.opts.mode ?? 'auto', log: this.logLine, lockWaitMs: opts.lockWaitMs ?? 0, ...(opts.adopted ? { adopted: opts.adopted } : {}) });
      this.notOpened.delete(rec.uuid);
      try {
        recordFileIds(this.store, rec); // the files served now are the pair's devices
      } catch (err) {
        // Advisory (discovery's rename rule): a database that cannot take the row now must not keep the pair from being served.
        this.log(`remapfs: ${rec.name}: could not record its devices' file identities: ${err instanceof Error ? err.message : String(err)}`);
      }
      return { svc: new PairService(rt, this.store, this.logLine, () => this.userIoOps()), mainKey: identify(rec.mainPath).key, spareKey: identify(rec.sparePath).key };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (this.notOpened.get(rec.uuid) !== msg) this.log(`remapfs: ${this.hotplugOn ? 'waiting for' : 'skipping'} pair ${rec.name}: ${msg}`);
      this.notOpened.set(rec.uuid, msg);
      return undefined;
    }
  }

  add(a: Attached): void {
    this.pairs.push(a);
    this.servedMount?.adapter.addFile(servedPairFile(a.svc.rt));
    a.svc.engineInfo = () => this.engineInfo(a.svc.name);
    a.svc.start();
  }

  attachLoop(a: Attached): void {
    if (this.opts.attach) void this.loop(a);
  }

  remove(a: Attached): void {
    a.svc.stop();
    this.pairs = this.pairs.filter((x) => x !== a);
  }

  private loop(a: Attached): Promise<void> {
    return attachLoop(this.mountpoint, a.svc.name, a.svc.rt.record.blockSize, this.logLine);
  }

  /** Requests served on every attached pair (the native engine serves most without the device). */
  userIoOps(): number {
    let n = 0;
    for (const a of this.pairs) {
      const e = this.servedMount?.adapter.engineStats(a.svc.name);
      n += a.svc.rt.device.counters.readOps + a.svc.rt.device.counters.writeOps + (e ? e.readOps + e.writeOps : 0);
    }
    return n;
  }

  /** The engine serving a pair and, for the native one, its counters (summed over its threads). */
  private engineInfo(name: string): { engine: string; counters?: IoCounters; engineCounters?: object; [detail: string]: unknown } {
    const adapter = this.servedMount?.adapter;
    const stats = adapter?.engineStats(name);
    const device = this.pairs.find((a) => a.svc.name === name)?.svc.rt.device;
    return {
      engine: adapter?.engine ?? 'none',
      ...(device ? { counters: servedCounters(device.counters, stats) } : {}),
      ...(stats ? { engineCounters: stats } : {}),
      ...(adapter?.engineDetails() ?? {}),
    };
  }

  /** Logs once that the database file is gone or replaced (the store then refuses every change). */
  private checkDatabase(): string | undefined {
    const already = this.store.lost;
    const lost = this.store.checkFile();
    if (lost && !already) {
      this.log(`remapfs: database ${this.store.path}: ${lost} while the daemon runs; metadata changes (remaps, settings) are refused from now on, and a write that needs a remap fails with EIO (stop the daemon and start it with the right database; "remapfs import" rebuilds one from the spares)`);
    }
    return lost;
  }

  private release(): void {
    this.hotplug.stop();
    if (this.dbTimer) clearInterval(this.dbTimer);
    for (const a of this.pairs) {
      a.svc.stop();
      try {
        a.svc.rt.device.flush();
      } catch (err) {
        this.log(`remapfs: flush ${a.svc.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
      try {
        a.svc.rt.close();
      } catch {
        // already closed
      }
    }
    this.pairs = [];
    try {
      this.store.mounts.delete(this.mountpoint, process.pid);
    } catch {
      // the database may be gone; the row is ignored once this pid is dead
    }
  }

  private controlTree(): ControlTree {
    return {
      list: (dir) => {
        if (dir === `/${CONTROL_DIR}`) return this.pairs.map((a) => a.svc.name);
        const a = this.pairs.find((x) => dir === `/${CONTROL_DIR}/${x.svc.name}`);
        return a ? Object.keys(a.svc.controlFiles()) : undefined;
      },
      file: (p) => {
        const parts = p.split('/');
        const a = this.pairs.find((x) => x.svc.name === parts[2]);
        return parts.length === 4 && a ? a.svc.controlFiles()[parts[3] as string] : undefined;
      },
    };
  }

  /** The host an operation runs against: the pair served, or (for an operation that allows it) the database's record. */
  private hostFor(name: string, unserved: boolean): PairHost {
    const a = this.pairs.find((x) => x.svc.name === name);
    if (a) return servedHost(a.svc, { store: this.store, mountpoint: this.mountpoint, log: this.logLine, openHandles: (n) => this.servedMount?.adapter.handlesOn(n) ?? 0, serveDevice: (n, device) => this.servedMount?.adapter.replaceDevice(n, device) });
    const notServed = () => new RemapfsError('find pair', name, `not served by the daemon at ${this.mountpoint}`, 'its devices are missing, or it was added after the daemon started');
    const rec = unserved ? this.store.pairs.get(name) : undefined;
    if (!rec) throw notServed();
    return unservedHost(this.store, rec, notServed);
  }

  /** Runs a checked request's operation (lib/pair/operations.ts) on the pair it names. */
  private handle(req: ControlRequest): unknown {
    if (req.op === 'fault') throw new RemapfsError('fault', this.mountpoint, 'a remapfs daemon serves this mount point, not a simulator', 'fault changes the sectors of a running "remapfs simulate"');
    this.checkDatabase();
    try {
      return dispatch(req, (pair, unserved) => this.hostFor(pair, unserved));
    } catch (err) {
      throw databaseError(req.op, this.store.path, err) ?? err;
    }
  }
}
