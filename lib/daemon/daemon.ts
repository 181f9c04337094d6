/**
 * The mount daemon: serves the pairs of a database at one mount point.
 *
 * Invariants: at most one live daemon per database (checked at start under the
 * database write lock, and recorded in the mounts table); every pair it serves
 * was checked (main label, spare metadata) and reconciled when opened; on the
 * way out both devices of every pair are flushed.
 *
 * Hot-plug (with watch directories): pairs whose devices are missing wait;
 * file-system events on /dev and the watched directories (and a rescan every
 * few seconds) attach a pair as soon as both halves are present, following
 * moves by UUID and importing new pairs found in watched directories. When a
 * half disappears, the pair is detached: its file leaves the mount at once if
 * nothing holds it open; otherwise every request on it fails with EIO (no
 * write can reach a device that went away) until the last handle closes, and
 * then the file leaves.
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
import { RemapfsError } from '../errors';
import { databaseError, PairRecord, Store } from '../store/db';
import { openPair, PairRuntime } from '../pair/pair';
import { pairStatus, remapSectors } from '../pair/ops';
import { identify, OpenMode } from '../block/file-device';
import { loopBackingFile } from '../block/loop';
import { GoneDevice } from '../block/gone-device';
import { reconcile } from '../meta/reconcile';
import { toVerifyReport } from '../meta/verify';
import { ControlRequest, socketPathFor } from './control';
import { checkMountpoint, ServedMount } from './served-mount';
import { PairService } from './pair-service';
import { ioFlusherStatus } from '../native/io-flusher';
import { CONTROL_DIR, ControlTree } from '../fs/fuse-adapter';
import { PairConfig, parseConfigValue } from '../health/config';
import { healthReport } from '../health/report';
import { discover } from '../discovery/discover';
import { importPair } from '../discovery/importer';
import { importBadSectors } from '../rescue/bad-sectors';
import { attachPair, detachPair, linkPath, loopDeviceUser } from './attach';

export interface ScanStatus {
  inProgress: boolean;
  cursorBlock: number;
  totalBlocks: number;
  passesCompleted: number;
  current: unknown;
  last: unknown;
}

export function scanStatus(svc: PairService): ScanStatus {
  const st = svc.scanner.state;
  return { inProgress: svc.scanner.inPass, cursorBlock: st.cursorBlock, totalBlocks: svc.scanner.totalBlocks, passesCompleted: st.passesCompleted, current: st.currentSummary, last: st.lastSummary };
}

export interface DaemonOptions {
  store: Store;
  mountpoint: string;
  mode?: OpenMode;
  /** Directories to watch for pairs' image files (hot-plug); /dev is watched too when any is given. */
  watchDirs?: string[];
  /** 'stock': answer reads and writes through fuse-native's own dispatch (lib/fs/lean-dispatch.ts explains). */
  dispatch?: 'lean' | 'stock';
  /** Attach every pair served to a loop device linked as /dev/remapfs/<pair>, and detach them on stop. */
  attach?: boolean;
  log?: (line: string) => void;
}

interface Attached {
  svc: PairService;
  /** Device identity keys at open: a different file at the same path is not this pair. */
  mainKey: string;
  spareKey: string;
}

const RESCAN_MS = 3000;
/** How long a starting daemon waits for a CLI command that holds a pair's devices. */
const START_LOCK_WAIT_MS = 60000;
const DB_CHECK_MS = 2000;
const DEBOUNCE_MS = 300;

export class Daemon {
  readonly mountpoint: string;
  private readonly store: Store;
  private readonly opts: DaemonOptions;
  private readonly log: (line: string) => void;
  private attached: Attached[] = [];
  /** Files still in the mount, answering EIO, until their last handle closes. */
  private gone = new Set<string>();
  private served: ServedMount | undefined;
  private watchers: fs.FSWatcher[] = [];
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly notOpened = new Map<string, string>();
  private dbTimer: NodeJS.Timeout | undefined;

  constructor(opts: DaemonOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.mountpoint = path.resolve(opts.mountpoint);
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
  }

  get done(): Promise<void> {
    return this.served?.done ?? Promise.resolve();
  }

  private get hotplug(): boolean {
    return (this.opts.watchDirs?.length ?? 0) > 0;
  }

  /** Opens the pairs, mounts, and registers; throws with nothing left behind. */
  async start(): Promise<string[]> {
    checkMountpoint(this.mountpoint);
    for (const d of this.opts.watchDirs ?? []) {
      if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new RemapfsError('watch', d, 'not a directory');
    }
    const records = this.store.pairs.list();
    if (records.length === 0 && !this.hotplug) throw new RemapfsError('mount', this.mountpoint, 'the database has no pairs', 'create one with "remapfs init"');
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
        const a = this.tryOpen(rec, START_LOCK_WAIT_MS);
        if (a) this.attached.push(a);
      }
      if (this.attached.length === 0 && !this.hotplug) throw new RemapfsError('mount', this.mountpoint, 'no pair could be opened');
    } catch (err) {
      this.release();
      throw err;
    }
    this.served = new ServedMount({
      mountpoint: this.mountpoint,
      files: this.attached.map((a) => ({ name: a.svc.name, device: a.svc.rt.device })),
      controlTree: this.controlTree(),
      stockDispatch: this.opts.dispatch === 'stock',
      log: this.log,
      handle: (req) => this.handle(req),
      beforeStop: (force) => this.detachLoops(force),
      release: () => this.release(),
    });
    await this.served.start();
    this.store.watchFile();
    this.dbTimer = setInterval(() => this.checkDatabase(), DB_CHECK_MS);
    this.dbTimer.unref();
    for (const a of this.attached) a.svc.start();
    if (this.opts.attach) for (const a of this.attached) await this.attachLoop(a);
    if (this.hotplug) this.startWatching();
    return this.attached.map((a) => a.svc.name);
  }

  /** Puts a served pair on a loop device; a failure is logged, and the pair stays served. */
  private async attachLoop(a: Attached): Promise<void> {
    const name = a.svc.name;
    try {
      const dev = await attachPair(name, path.join(this.mountpoint, name), a.svc.rt.record.blockSize);
      this.log(`remapfs: ${name}: attached as ${linkPath(name)} (${dev})`);
    } catch (err) {
      this.log(`remapfs: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The pairs whose link /dev/remapfs/<pair> names a loop device on their file here (remapfs attach, or --attach). */
  private linkedLoops(): Array<{ name: string; dev: string }> {
    const out: Array<{ name: string; dev: string }> = [];
    for (const name of new Set([...this.attached.map((a) => a.svc.name), ...this.gone])) {
      let dev: string;
      try {
        dev = fs.readlinkSync(linkPath(name));
      } catch {
        continue;
      }
      if (loopBackingFile(dev) === path.join(this.mountpoint, name)) out.push({ name, dev });
    }
    return out;
  }

  /** Detaches the linked loop devices; unless forced, refuses (and detaches none) while one is in use. */
  private async detachLoops(force: boolean): Promise<void> {
    const loops = this.linkedLoops();
    if (!force) {
      for (const { name, dev } of loops) {
        const user = loopDeviceUser(dev);
        if (user) throw new RemapfsError('stop', this.mountpoint, `${dev} (${linkPath(name)}) is ${user}`, 'unmount it first, or send the signal again to force');
      }
    }
    for (const { name, dev } of loops) {
      try {
        await detachPair(name, path.join(this.mountpoint, name), force);
        this.log(`remapfs: ${name}: detached ${dev} and removed ${linkPath(name)}`);
      } catch (err) {
        if (!force) throw err;
        this.log(`remapfs: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Requests served on every attached pair. */
  private userIoOps(): number {
    let n = 0;
    for (const a of this.attached) n += a.svc.rt.device.counters.readOps + a.svc.rt.device.counters.writeOps;
    return n;
  }

  stop(force: boolean): Promise<void> {
    return this.served ? this.served.stop(force) : Promise.resolve();
  }

  private tryOpen(rec: PairRecord, lockWaitMs = 0): Attached | undefined {
    try {
      const rt = openPair(this.store, rec, { mode: this.opts.mode ?? 'auto', log: this.log, lockWaitMs });
      this.notOpened.delete(rec.uuid);
      return { svc: new PairService(rt, this.store, this.log, () => this.userIoOps()), mainKey: identify(rec.mainPath).key, spareKey: identify(rec.sparePath).key };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (this.notOpened.get(rec.uuid) !== msg) this.log(`remapfs: ${this.hotplug ? 'waiting for' : 'skipping'} pair ${rec.name}: ${msg}`);
      this.notOpened.set(rec.uuid, msg);
      return undefined;
    }
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

  // ---- hot-plug ----------------------------------------------------------

  private startWatching(): void {
    const kick = () => {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.rescan(), DEBOUNCE_MS);
    };
    for (const d of [...(this.opts.watchDirs ?? []), '/dev']) {
      try {
        this.watchers.push(fs.watch(d, kick));
      } catch (err) {
        this.log(`remapfs: cannot watch ${d}: ${err instanceof Error ? err.message : String(err)} (a rescan every ${RESCAN_MS / 1000} s still runs)`);
      }
    }
    this.rescanTimer = setInterval(() => this.rescan(), RESCAN_MS);
    kick();
  }

  private stopWatching(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /** Detaches pairs whose devices left, and attaches pairs whose devices are all present. */
  rescan(): void {
    if (!this.served) return;
    try {
      for (const name of [...this.gone]) {
        if (this.served.adapter.handlesOn(name) === 0) {
          this.served.adapter.removeFile(name);
          this.gone.delete(name);
          this.log(`remapfs: ${name}: its last handle closed; removed from the mount`);
        }
      }
      const missing = this.attached.filter((a) => !this.stillThere(a));
      const report = missing.length || this.hotplug ? discover(this.opts.watchDirs ?? [], this.store, { excludeUnder: [this.mountpoint] }) : undefined;
      for (const a of missing) {
        const rec = a.svc.rt.record;
        const found = report?.pairs.find((p) => p.uuid === rec.uuid && p.status === 'complete');
        if (found?.main && found.spare && safeKey(found.main.path) === a.mainKey && safeKey(found.spare.path) === a.spareKey) {
          // The same devices under new names: keep serving, remember the paths.
          this.store.pairs.updatePaths(rec.id, found.main.path, found.spare.path);
          a.svc.rt.record.mainPath = found.main.path;
          a.svc.rt.record.sparePath = found.spare.path;
          this.log(`remapfs: ${rec.name}: its devices moved to ${found.main.path} and ${found.spare.path}`);
          continue;
        }
        this.detach(a, 'a device of the pair disappeared');
      }
      if (!report) return;
      for (const p of report.pairs) {
        if (p.status !== 'complete' || !p.main || !p.spare) continue;
        if (this.attached.some((a) => a.svc.rt.record.uuid === p.uuid)) continue;
        let rec = this.store.pairs.byUuid(p.uuid);
        if (rec && this.gone.has(rec.name)) continue; // wait until the old file is released
        if (!rec) {
          if (!this.inWatchedDir(p.main.path) && !this.inWatchedDir(p.spare.path)) continue;
          try {
            rec = importPair(this.store, p.main.path, p.spare.path).pair;
            this.log(`remapfs: ${rec.name}: found in a watched directory and imported`);
          } catch (err) {
            const msg = err instanceof Error ? err.message : String(err);
            if (this.notOpened.get(p.uuid) !== msg) this.log(`remapfs: cannot import the pair found at ${p.main.path} and ${p.spare.path}: ${msg}`);
            this.notOpened.set(p.uuid, msg);
            continue;
          }
        } else if (rec.mainPath !== p.main.path || rec.sparePath !== p.spare.path) {
          this.store.pairs.updatePaths(rec.id, p.main.path, p.spare.path, p.spare.hardwareId);
          rec = { ...rec, mainPath: p.main.path, sparePath: p.spare.path, spareHwid: p.spare.hardwareId };
        }
        const a = this.tryOpen(rec);
        if (!a) continue;
        this.attached.push(a);
        this.served.adapter.addFile({ name: a.svc.name, device: a.svc.rt.device });
        a.svc.start();
        this.log(`remapfs: ${a.svc.name}: attached (main ${rec.mainPath}, spare ${rec.sparePath})`);
        if (this.opts.attach) void this.attachLoop(a);
      }
    } catch (err) {
      this.log(`remapfs: rescan: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private inWatchedDir(p: string): boolean {
    return (this.opts.watchDirs ?? []).some((d) => path.dirname(p) === safeReal(d));
  }

  private stillThere(a: Attached): boolean {
    return safeKey(a.svc.rt.record.mainPath) === a.mainKey && safeKey(a.svc.rt.record.sparePath) === a.spareKey;
  }

  private detach(a: Attached, why: string): void {
    const name = a.svc.name;
    a.svc.stop();
    this.attached = this.attached.filter((x) => x !== a);
    const served = this.served;
    if (served && served.adapter.handlesOn(name) > 0) {
      served.adapter.replaceDevice(name, new GoneDevice(name, a.svc.rt.device.sizeBytes, why));
      this.gone.add(name);
      this.log(`remapfs: ${name}: ${why}; ${served.adapter.handlesOn(name)} handle(s) still open (a loop device?): every request now fails with EIO; detach it, and the file leaves the mount`);
    } else {
      served?.adapter.removeFile(name);
      this.log(`remapfs: ${name}: ${why}; removed from the mount`);
    }
    try {
      a.svc.rt.device.flush();
    } catch {
      // the device is gone; everything acknowledged was already durable
    }
    a.svc.rt.close();
  }

  // ---- shutdown and control ---------------------------------------------

  private release(): void {
    this.stopWatching();
    if (this.dbTimer) clearInterval(this.dbTimer);
    for (const a of this.attached) {
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
    this.attached = [];
    try {
      this.store.mounts.delete(this.mountpoint, process.pid);
    } catch {
      // the database may be gone; the row is ignored once this pid is dead
    }
  }

  private service(name: string): PairService {
    const a = this.attached.find((x) => x.svc.name === name);
    if (!a) throw new RemapfsError('find pair', name, `not served by the daemon at ${this.mountpoint}`, 'its devices are missing, or it was added after the daemon started');
    return a.svc;
  }

  private runtime(name: string): PairRuntime {
    return this.service(name).rt;
  }

  private controlTree(): ControlTree {
    return {
      list: (dir) => {
        if (dir === `/${CONTROL_DIR}`) return this.attached.map((a) => a.svc.name);
        const a = this.attached.find((x) => dir === `/${CONTROL_DIR}/${x.svc.name}`);
        return a ? Object.keys(a.svc.controlFiles()) : undefined;
      },
      file: (p) => {
        const parts = p.split('/');
        const a = this.attached.find((x) => x.svc.name === parts[2]);
        return parts.length === 4 && a ? a.svc.controlFiles()[parts[3] as string] : undefined;
      },
    };
  }

  private handle(req: ControlRequest): unknown {
    this.checkDatabase();
    try {
      return this.handleRequest(req);
    } catch (err) {
      throw databaseError(req.op, this.store.path, err) ?? err;
    }
  }

  private handleRequest(req: ControlRequest): unknown {
    switch (req.op) {
      case 'status':
        return this.attached.map((a) => ({
          ...pairStatus(this.store, a.svc.rt.record),
          database: this.store.lost ? `${this.store.lost} (${this.store.path}); metadata changes refused` : 'ok',
          mounted: true,
          mountpoint: this.mountpoint,
          counters: { ...a.svc.rt.device.counters },
          openHandles: this.served?.adapter.handlesOn(a.svc.name) ?? 0,
          ioFlusher: ioFlusherStatus(),
        }));
      case 'remap':
        return remapSectors(this.runtime(req.pair), req.sectors);
      case 'verify': {
        const rt = this.runtime(req.pair);
        const r = reconcile(this.store, rt.record, rt.journal.slots, { write: req.repair, inForce: rt.journal.state, log: this.log });
        return toVerifyReport(rt.record, r);
      }
      case 'config': {
        const svc = this.service(req.pair);
        const changes: Record<string, unknown> = {};
        try {
          for (const [k, v] of Object.entries(req.changes)) changes[k] = parseConfigValue(k, v);
          return Object.keys(changes).length ? svc.updateConfig(changes as Partial<PairConfig>) : svc.config;
        } catch (err) {
          throw new RemapfsError('config', req.pair, err instanceof Error ? err.message : String(err));
        }
      }
      case 'scan': {
        const svc = this.service(req.pair);
        svc.scheduler.requestPass(req.restart);
        return scanStatus(svc);
      }
      case 'scan-status':
        return scanStatus(this.service(req.pair));
      case 'health':
        return healthReport(this.store, this.runtime(req.pair).record);
      case 'track':
        return this.service(req.pair).track(req.action, (device) => this.served?.adapter.replaceDevice(req.pair, device));
      case 'import-bad':
        return importBadSectors(this.runtime(req.pair).device, req.sectors);
      default:
        throw new RemapfsError('control', 'request', `unknown operation ${req.op}`);
    }
  }
}

function safeKey(p: string): string | undefined {
  try {
    return identify(p).key;
  } catch {
    return undefined;
  }
}

function safeReal(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}
