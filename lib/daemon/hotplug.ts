/**
 * Hot-plug (with watch directories): file-system events on /dev and the
 * watched directories (debounced), and a rescan every few seconds, attach a
 * pair as soon as both halves are present, following moves by UUID and
 * importing new pairs found in watched directories. When a half disappears
 * the pair is detached: its file leaves the mount at once if nothing holds it
 * open; otherwise every request on it fails with EIO (GoneDevice) until the
 * last handle closes, and then the file leaves.
 *
 * The daemon owns the served pairs (`DaemonPairs`); this module decides when
 * they come and go. Discovery's reading of slots and tables runs in a worker
 * thread (discovery/background.ts); its report is applied on the event loop.
 * An import has the worker read and validate the whole table, and sort its
 * history (readTableInBackground); this thread checks the slots' seal and
 * writes the database in small steps with the event loop turning between
 * them (importPairStepped, discovery/import-steps.ts), then opens the pair
 * and publishes its routes. One import per pair at a time; one that failed is
 * tried again only when a device's identity, size or times change (a file
 * rewritten; a block device re-plugged), not on every rescan, except when
 * the slots changed after the worker read them (StaleTableError): that one
 * is read again at the next rescan. With REMAPFS_DEBUG, each import logs its
 * steps (the longest, in all) and the requests served between its row
 * chunks, and each attach the time of the open and of the publish.
 */
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import type { PairRecord, Store } from '../store/db.js';
import { isPathRefusal } from '../block/disk-error.js';
import { identify } from '../block/file-device.js';
import { GoneDevice } from '../block/gone-device.js';
import { backgroundWhere, discoverInBackground, readTableInBackground } from '../discovery/background.js';
import type { DiscoveryReport } from '../discovery/discover.js';
import { importPairStepped, type ImportResult, StaleTableError } from '../discovery/importer.js';
import type { TableRead } from '../discovery/probe-worker.js';
import { describePhases, describeSteps, type SteppedOptions, type StepStats } from '../discovery/steps.js';
import type { AdoptedTable } from '../meta/locate.js';
import type { PairService } from './pair-service.js';
import type { ServedMount } from './served-mount.js';
import { recordFileIds } from '../discovery/file-ids.js';

export interface Attached {
  svc: PairService;
  /** Device identity keys at open: a different file at the same path is not this pair. */
  mainKey: string;
  spareKey: string;
}

/** What hot-plug needs of the daemon. */
export interface DaemonPairs {
  readonly store: Store;
  readonly mountpoint: string;
  readonly watchDirs: readonly string[];
  log(line: string): void;
  served(): ServedMount | undefined;
  attached(): readonly Attached[];
  /** Files still in the mount, answering EIO, until their last handle closes. */
  readonly gone: Set<string>;
  /** Why a pair could not be opened or imported, by UUID (each reason is logged once). */
  readonly notOpened: Map<string, string>;
  tryOpen(rec: PairRecord, opts?: OpenOptions): Attached | undefined;
  /** tryOpen in steps, with the event loop turning while the index is built; `stopped` ends it early. */
  tryOpenStepped(rec: PairRecord, opts: OpenOptions, stopped: () => boolean): Promise<{ value: Attached | undefined; stats: StepStats }>;
  /** Serves an opened pair: its file joins the mount, its scanner starts. */
  add(a: Attached): void;
  /** With --attach: puts the pair's file on a loop device (in the background). */
  attachLoop(a: Attached): void;
  /** Reads and writes served so far (discovery logs how many it let through). */
  userIoOps(): number;
  /** Stops a pair's scanner and forgets it (its file and devices are left to the caller). */
  remove(a: Attached): void;
}

export interface OpenOptions {
  /** How long to wait for another holder of the devices (default: fail at once). */
  lockWaitMs?: number;
  /** The table the pair was just imported from: its open need not read the slots again. */
  adopted?: AdoptedTable;
}

/** How hot-plug imports a pair found in a watched directory, with the table read off this thread, in steps (fakes in unit tests). */
export type Importer = (store: Store, mainPath: string, sparePath: string, table: TableRead, run: SteppedOptions) => Promise<{ value: ImportResult; stats: StepStats }>;

/** The daemon's importer: in steps, and a table that changed after the worker read it is not read on this thread. */
export const steppedImport: Importer = (store, mainPath, sparePath, table, run) =>
  importPairStepped(store, mainPath, sparePath, { table, rereadStale: false, maxRepairEntries: HOTPLUG_MAX_REPAIR_ENTRIES, ...run });
export type TableReader = (sparePath: string) => Promise<TableRead>;

/** A hot-plugged pair whose copies disagree is repaired on the serving thread only up to this many entries (a few 100 ms). */
export const HOTPLUG_MAX_REPAIR_ENTRIES = 65_536;
const RESCAN_MS = 3000;
const DEBOUNCE_MS = 300;

export class HotPlug {
  private watchers: fs.FSWatcher[] = [];
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** UUID → the devices (path, identity, size, times) of an import that failed: not tried again unchanged. */
  private readonly failedImports = new Map<string, string>();
  /** UUIDs being imported (their tables read in the worker): not started again meanwhile. */
  private readonly importing = new Set<string>();
  private stopped = false;

  constructor(
    private readonly d: DaemonPairs,
    private readonly importer: Importer = steppedImport,
    private readonly readTable: TableReader = readTableInBackground,
  ) {}

  start(): void {
    const kick = () => {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.rescan(), DEBOUNCE_MS);
    };
    for (const dir of [...this.d.watchDirs, '/dev']) {
      try {
        this.watchers.push(fs.watch(dir, kick));
      } catch (err) {
        this.d.log(`remapfs: cannot watch ${dir}: ${err instanceof Error ? err.message : String(err)} (a rescan every ${RESCAN_MS / 1000} s still runs)`);
      }
    }
    this.rescanTimer = setInterval(() => this.rescan(), RESCAN_MS);
    kick();
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.rescanTimer = undefined;
    if (this.debounce) clearTimeout(this.debounce);
  }

  /**
   * Detaches pairs whose devices left, and attaches pairs whose devices are all
   * present. Discovery runs in a worker thread (discovery/background.ts) while
   * this thread keeps serving; its report is applied here when it arrives.
   */
  rescan(): void {
    const d = this.d;
    const served = d.served();
    if (!served) return;
    try {
      for (const name of [...d.gone]) {
        if (served.adapter.handlesOn(name) === 0) {
          served.adapter.removeFile(name);
          d.gone.delete(name);
          d.log(`remapfs: ${name}: its last handle closed; removed from the mount`);
        }
      }
    } catch (err) {
      d.log(`remapfs: rescan: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!d.attached().some((a) => !stillThere(a)) && d.watchDirs.length === 0) return;
    const servedHere = d.attached().filter((a) => stillThere(a)).map((a) => a.svc.rt.record.uuid);
    const held = new Map(d.attached().map((a) => [a.svc.rt.record.uuid, [a.mainKey, a.spareKey]]));
    discoverInBackground([...d.watchDirs], d.store, { excludeUnder: [d.mountpoint], skipTables: servedHere, held, log: (line) => d.log(line), requestsServed: () => d.userIoOps() })
      .catch((err: unknown) => {
        // Without a report, pairs whose devices left are still detached.
        d.log(`remapfs: rescan: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      })
      .then((report) => {
        if (!this.rescanTimer || !d.served()) return; // stopped while the worker ran
        this.apply(report);
      })
      .catch((err: unknown) => d.log(`remapfs: rescan: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** Applies a discovery report (or none): detach what left, follow moves, attach what is complete (imports finish later). Public for tests. */
  apply(report: DiscoveryReport | undefined): void {
    const d = this.d;
    for (const a of d.attached().filter((x) => !stillThere(x))) {
      const rec = a.svc.rt.record;
      const found = report?.pairs.find((p) => p.uuid === rec.uuid && p.status === 'complete');
      if (found?.main && found.spare && safeKey(found.main.path) === a.mainKey && safeKey(found.spare.path) === a.spareKey) {
        // The same devices under new names: keep serving, remember the paths.
        d.store.pairs.updatePaths(rec.id, found.main.path, found.spare.path);
        recordFileIds(d.store, { id: rec.id, mainPath: found.main.path, sparePath: found.spare.path });
        a.svc.rt.record.mainPath = found.main.path;
        a.svc.rt.record.sparePath = found.spare.path;
        d.log(`remapfs: ${rec.name}: its devices moved to ${found.main.path} and ${found.spare.path}`);
        continue;
      }
      this.detach(a, 'a device of the pair disappeared');
    }
    for (const p of report?.pairs ?? []) {
      if (p.status === 'conflict' && p.known && p.conflict && !d.attached().some((a) => a.svc.rt.record.uuid === p.uuid)) {
        // A pair of this database that discovery cannot decide (a copy of a device that is gone, say): said once.
        const msg = `not attached: ${p.conflict}`;
        if (d.notOpened.get(p.uuid) !== msg) d.log(`remapfs: ${p.known.name}: ${msg}`);
        d.notOpened.set(p.uuid, msg);
      }
      if (p.status !== 'complete' || !p.main || !p.spare) continue;
      if (d.attached().some((a) => a.svc.rt.record.uuid === p.uuid)) continue;
      // Being imported, or opened after its import (in steps): not attached twice.
      if (this.importing.has(p.uuid)) continue;
      let rec = d.store.pairs.byUuid(p.uuid);
      if (rec && d.gone.has(rec.name)) continue; // wait until the old file is released
      if (!rec) {
        if (!this.inWatchedDir(p.main.path) && !this.inWatchedDir(p.spare.path)) continue;
        // An import that failed is tried again only when a device changed: it reads the whole table.
        const attempt = candidateKey(p.main.path, p.spare.path);
        if (attempt !== undefined && this.failedImports.get(p.uuid) === attempt) continue;
        this.importing.add(p.uuid);
        void this.importAndAttach(p.uuid, p.main.path, p.spare.path, attempt).finally(() => this.importing.delete(p.uuid));
        continue;
      } else if (rec.mainPath !== p.main.path || rec.sparePath !== p.spare.path) {
        d.store.pairs.updatePaths(rec.id, p.main.path, p.spare.path, p.spare.hardwareId);
        rec = { ...rec, mainPath: p.main.path, sparePath: p.spare.path, spareHwid: p.spare.hardwareId };
      }
      this.attach(rec);
    }
  }

  /** Opens and serves a pair of the database (tryOpen logs why one cannot be opened). */
  private attach(rec: PairRecord): void {
    const a = this.d.tryOpen(rec);
    if (a) this.serve(a);
  }

  /** Opens a pair just imported in steps (its index is built with the event loop turning), then serves it. */
  private async attachImported(rec: PairRecord, adopted: AdoptedTable | undefined): Promise<void> {
    const d = this.d;
    const { value: a, stats } = await d.tryOpenStepped(rec, adopted ? { adopted } : {}, () => this.stopped);
    if (!a) return;
    if (this.stopped || !d.served()) {
      a.svc.rt.close(); // the daemon stopped meanwhile
      return;
    }
    const t = performance.now();
    this.serve(a);
    if (process.env.REMAPFS_DEBUG) d.log(`remapfs: hot-plug: ${rec.name}: opened in ${describeSteps(stats)}, over ${stats.elapsedMs.toFixed(0)} ms; added to the mount (its routes published) in ${(performance.now() - t).toFixed(0)} ms`);
  }

  private serve(a: Attached): void {
    const d = this.d;
    d.add(a);
    d.log(`remapfs: ${a.svc.name}: attached (main ${a.svc.rt.record.mainPath}, spare ${a.svc.rt.record.sparePath})`);
    d.attachLoop(a);
  }

  /**
   * Imports the pair found at these paths: its table read and validated in
   * the worker; then, on this thread, the import (seal, database) and the open.
   * A failure is logged once per reason and remembered under `attempt`.
   */
  private async importAndAttach(uuid: string, mainPath: string, sparePath: string, attempt: string | undefined): Promise<void> {
    const d = this.d;
    if (process.env.REMAPFS_DEBUG) d.log(`remapfs: hot-plug: trying to import the pair found at ${mainPath} and ${sparePath}`);
    let imported: ImportResult;
    try {
      const servedBefore = d.userIoOps();
      const table = await this.readTable(sparePath);
      if (this.stopped) return; // the daemon stopped while the worker read
      if (process.env.REMAPFS_DEBUG) {
        const what = 'table' in table ? `${table.table.header.entryCount} entries` : `refused: ${table.rejected.length} cop(ies)`;
        d.log(`remapfs: hot-plug: the table of ${sparePath} was read ${backgroundWhere()} (${what}); ${d.userIoOps() - servedBefore} request(s) served meanwhile`);
      }
      const { value, stats } = await this.importer(d.store, mainPath, sparePath, table, { served: () => d.userIoOps(), stopped: () => this.stopped });
      imported = value;
      if (process.env.REMAPFS_DEBUG) {
        const rows = stats.phases.get('rows');
        d.log(`remapfs: hot-plug: ${value.pair.name}: the database import ran on the serving thread in ${describeSteps(stats)}, over ${stats.elapsedMs.toFixed(0)} ms; ${rows?.servedBetween ?? 0} request(s) served between its ${rows?.steps ?? 0} row chunk(s)`);
        d.log(`remapfs: hot-plug: ${value.pair.name}: import steps by phase: ${describePhases(stats)}; steps over 200 ms: ${stats.stepMs.filter((ms) => ms > 200).map((ms) => ms.toFixed(0)).join(', ') || 'none'}`);
      }
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (d.notOpened.get(uuid) !== msg) d.log(`remapfs: cannot import the pair found at ${mainPath} and ${sparePath}: ${msg}`);
      d.notOpened.set(uuid, msg);
      // A table that changed while the worker read it is read again at the next rescan.
      if (attempt !== undefined && !(err instanceof StaleTableError)) this.failedImports.set(uuid, attempt);
      return;
    }
    d.log(`remapfs: ${imported.pair.name}: found in a watched directory and imported`);
    if (d.attached().some((a) => a.svc.rt.record.uuid === uuid)) return;
    try {
      await this.attachImported(imported.pair, imported.adopted);
    } catch (err) {
      // The daemon stopped while the pair was being opened; tryOpen logs every other reason.
      d.log(`remapfs: ${imported.pair.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private inWatchedDir(p: string): boolean {
    return this.d.watchDirs.some((dir) => path.dirname(p) === safeReal(dir));
  }

  private detach(a: Attached, why: string): void {
    const d = this.d;
    const name = a.svc.name;
    d.remove(a);
    const served = d.served();
    if (served && served.adapter.handlesOn(name) > 0) {
      served.adapter.replaceDevice(name, new GoneDevice(name, a.svc.rt.device.sizeBytes, why));
      d.gone.add(name);
      d.log(`remapfs: ${name}: ${why}; ${served.adapter.handlesOn(name)} handle(s) still open (a loop device?): every request now fails with EIO; detach it, and the file leaves the mount`);
    } else {
      served?.adapter.removeFile(name);
      d.log(`remapfs: ${name}: ${why}; removed from the mount`);
    }
    try {
      a.svc.rt.device.flush();
    } catch {
      // the device is gone; everything acknowledged was already durable
    }
    a.svc.rt.close();
  }
}

function stillThere(a: Attached): boolean {
  return safeKey(a.svc.rt.record.mainPath) === a.mainKey && safeKey(a.svc.rt.record.sparePath) === a.spareKey;
}

function safeKey(p: string): string | undefined {
  try {
    return identify(p).key;
  } catch (err) {
    // Nothing there now: the pair's device left.
    if (!isPathRefusal(err)) throw err;
    return undefined;
  }
}

function safeReal(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch (err) {
    // A watched directory that does not exist (yet) is compared by its name.
    if (!isPathRefusal(err)) throw err;
    return path.resolve(p);
  }
}

/** What an import attempt read: both paths with their identity, size and times; undefined when one cannot be stat'ed. */
function candidateKey(mainPath: string, sparePath: string): string | undefined {
  try {
    return [mainPath, sparePath]
      .map((p) => {
        const st = fs.statSync(p);
        return `${p}:${st.dev}:${st.ino}:${st.rdev}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
      })
      .join('|');
  } catch (err) {
    if (!isPathRefusal(err)) throw err;
    return undefined;
  }
}
