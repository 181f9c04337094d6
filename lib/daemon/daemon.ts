/**
 * The mount daemon: serves every pair of a database at one mount point.
 *
 * Invariants: at most one live daemon per database (checked at start under the
 * database write lock, and recorded in the mounts table); every pair it serves
 * was reconciled with its metadata slots when opened; on the way out both
 * devices of every pair are flushed.
 */
import * as path from 'path';
import { RemapfsError } from '../errors';
import { Store } from '../store/db';
import { openPair, PairRuntime } from '../remap/pair';
import { pairStatus, remapSectors } from '../remap/ops';
import { OpenMode } from '../block/file-device';
import { reconcile } from '../meta/reconcile';
import { toVerifyReport } from '../meta/verify';
import { ControlRequest, socketPathFor } from './control';
import { checkMountpoint, ServedMount } from './served-mount';
import { PairService } from './pair-service';
import { CONTROL_DIR, ControlTree } from '../fs/fuse-adapter';
import { PairConfig, parseConfigValue } from '../health/config';
import { healthReport } from '../health/report';

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
  log?: (line: string) => void;
}

export class Daemon {
  readonly mountpoint: string;
  private readonly store: Store;
  private readonly opts: DaemonOptions;
  private readonly log: (line: string) => void;
  private pairs: PairRuntime[] = [];
  private services: PairService[] = [];
  private served: ServedMount | undefined;

  constructor(opts: DaemonOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.mountpoint = path.resolve(opts.mountpoint);
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
  }

  get done(): Promise<void> {
    return this.served?.done ?? Promise.resolve();
  }

  /** Opens every pair, mounts, and registers; throws with nothing left behind. */
  async start(): Promise<string[]> {
    checkMountpoint(this.mountpoint);
    const records = this.store.listPairs();
    if (records.length === 0) throw new RemapfsError('mount', this.mountpoint, 'the database has no pairs', 'create one with "remapfs init"');
    this.store.transaction(() => {
      const other = this.store.liveMounts().find((m) => m.pid !== process.pid);
      if (other) {
        throw new RemapfsError('mount', this.mountpoint, `the pairs of this database are already served at ${other.mountpoint} by pid ${other.pid}`, 'unmount that first');
      }
      this.store.putMount({ mountpoint: this.mountpoint, pid: process.pid, socket: socketPathFor(this.mountpoint), startedAt: Date.now() });
    });
    try {
      for (const rec of records) {
        try {
          this.pairs.push(openPair(this.store, rec, { mode: this.opts.mode ?? 'auto', log: this.log }));
        } catch (err) {
          this.log(`remapfs: skipping pair ${rec.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (this.pairs.length === 0) throw new RemapfsError('mount', this.mountpoint, 'no pair could be opened');
    } catch (err) {
      this.release();
      throw err;
    }
    this.services = this.pairs.map((rt) => new PairService(rt, this.store, this.log));
    this.served = new ServedMount({
      mountpoint: this.mountpoint,
      files: this.pairs.map((p) => ({ name: p.record.name, device: p.device })),
      controlTree: this.controlTree(),
      log: this.log,
      handle: (req) => this.handle(req),
      release: () => this.release(),
    });
    await this.served.start();
    for (const svc of this.services) svc.start();
    return this.pairs.map((p) => p.record.name);
  }

  stop(force: boolean): Promise<void> {
    return this.served ? this.served.stop(force) : Promise.resolve();
  }

  private release(): void {
    for (const svc of this.services) svc.stop();
    this.services = [];
    for (const p of this.pairs) {
      try {
        p.device.flush();
      } catch (err) {
        this.log(`remapfs: flush ${p.record.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
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

  private service(name: string): PairService {
    const svc = this.services.find((s) => s.name === name);
    if (!svc) throw new RemapfsError('find pair', name, `not served by the daemon at ${this.mountpoint}`, 'its devices were missing when it started');
    return svc;
  }

  private controlTree(): ControlTree {
    return {
      list: (dir) => {
        if (dir === `/${CONTROL_DIR}`) return this.services.map((s) => s.name);
        const svc = this.services.find((s) => dir === `/${CONTROL_DIR}/${s.name}`);
        return svc ? Object.keys(svc.controlFiles()) : undefined;
      },
      file: (p) => {
        const parts = p.split('/');
        const svc = this.services.find((s) => s.name === parts[2]);
        return parts.length === 4 && svc ? svc.controlFiles()[parts[3] as string] : undefined;
      },
    };
  }

  private runtime(name: string): PairRuntime {
    const rt = this.pairs.find((p) => p.record.name === name);
    if (!rt) throw new RemapfsError('find pair', name, `not served by the daemon at ${this.mountpoint}`, 'its devices were missing when it started');
    return rt;
  }

  private handle(req: ControlRequest): unknown {
    switch (req.op) {
      case 'status':
        return this.pairs.map((p) => ({
          ...pairStatus(this.store, p.record),
          mounted: true,
          mountpoint: this.mountpoint,
          counters: { ...p.device.counters },
          openHandles: this.served?.adapter.handlesByFile()[p.record.name] ?? 0,
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
      default:
        throw new RemapfsError('control', 'request', `unknown operation ${req.op}`);
    }
  }
}
