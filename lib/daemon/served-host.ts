/**
 * The daemon's side of PairHost (lib/pair/host.ts): a pair it serves, with
 * the table in force, the live settings and the background scanner of its
 * PairService; or, for an operation that may answer from the database alone
 * (status), a pair it does not serve. dispatch() is the daemon's whole
 * control dispatch: check, find the host, run the operation's run().
 */
import type { BlockDevice } from '../block/device.js';
import { RemapfsError } from '../errors.js';
import type { PairRecord, Store } from '../store/db.js';
import { type PairHost, scanStatusOf } from '../pair/host.js';
import { checkPairRequest, operation, runOperation } from '../pair/operations.js';
import { reconcile } from '../meta/reconcile.js';
import { toVerifyReport } from '../meta/verify.js';
import { ioFlusherStatus } from '../native/io-flusher.js';
import type { PairService } from './pair-service.js';

export interface ServingDaemon {
  readonly store: Store;
  readonly mountpoint: string;
  log(line: string): void;
  /** Open handles on the pair's file in the mount. */
  openHandles(name: string): number;
  /** Serves `device` as the pair's file from now on (the tracking layer, then the pair's device again). */
  serveDevice(name: string, device: BlockDevice): void;
}

export function servedHost(svc: PairService, d: ServingDaemon): PairHost {
  const rt = svc.rt;
  const store = d.store;
  return {
    store,
    record: rt.record,
    runtime: () => rt,
    verify: (repair) => {
      const r = reconcile(store, rt.record, rt.journal.slots, { write: repair, inForce: rt.journal.state, log: (line) => d.log(line) });
      if (repair) rt.journal.repaired(r.unwritten);
      return toVerifyReport(rt.record, r);
    },
    config: () => svc.settings(),
    updateConfig: (changes) => {
      try {
        return svc.updateConfig(changes);
      } catch (err) {
        if (err instanceof RemapfsError) throw err; // a bad stored row of another key, named
        throw new RemapfsError('config', rt.record.name, err instanceof Error ? err.message : String(err));
      }
    },
    requestScan: (restart) => {
      svc.settings(); // a scan needs good settings
      svc.scheduler.requestPass(restart);
      return scanStatusOf(svc.scanner);
    },
    scanStatus: () => scanStatusOf(svc.scanner),
    track: (action, token) => svc.track(action, token, (device) => d.serveDevice(svc.name, device)),
    live: () => ({
      database: store.lost ? `${store.lost} (${store.path}); metadata changes refused` : 'ok',
      mounted: true,
      mountpoint: d.mountpoint,
      counters: { ...rt.device.counters },
      ...svc.engineInfo(),
      openHandles: d.openHandles(svc.name),
      ioFlusher: ioFlusherStatus(),
    }),
  };
}

/** A pair in the database that this daemon does not serve: only the database can answer. */
export function unservedHost(store: Store, record: PairRecord, notServed: () => RemapfsError): PairHost {
  const refuse = (): never => {
    throw notServed();
  };
  return { store, record, runtime: refuse, verify: refuse, config: refuse, updateConfig: refuse, requestScan: refuse, scanStatus: refuse, track: refuse, live: () => ({}) };
}

/**
 * Runs a request's operation (lib/pair/operations.ts) against the host of the
 * pair it names; `hostFor` is told whether the operation may answer for a
 * pair that is not served.
 */
export function dispatch(req: unknown, hostFor: (pair: string, unserved: boolean) => PairHost): unknown {
  const { op, pair, args } = checkPairRequest(req);
  return runOperation(hostFor(pair, !!operation(op).unserved), op, args);
}
