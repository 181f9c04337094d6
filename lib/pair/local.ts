/**
 * The in-process transport: an operation runs here, on the pair opened in
 * this process. LocalHost opens the pair (under its device lock, taken at
 * once or refused with DeviceBusyError) only when the operation needs it, so
 * status, config and verify work on the database and the spare alone, as
 * they do without a daemon. After a successful operation the opened pair is
 * flushed; it is closed (and the lock released) either way.
 */
import { RemapfsError, UsageError } from '../errors.js';
import type { PairRecord, Store } from '../store/db.js';
import { lockPair, openPair, type PairRuntime } from './pair.js';
import { type PairHost, type ScanStatus, scanStatusOf } from './host.js';
import { checkPairRequest, operation, type Transport, toRequest } from './operations.js';
import { checkOffline, type VerifyReport } from '../meta/verify.js';
import { mergeConfig, type PairConfig } from '../health/config.js';
import { loadConfig, saveConfig } from '../health/history.js';
import { healthReport } from '../health/report.js';
import { Scanner } from '../health/scanner.js';
import { adaptiveIntervalMs } from '../health/score.js';
import { sleepSyncMs } from '../fsutil/sleep.js';

export interface LocalOptions {
  /** Opening's repairs and a scan's findings (default: silent). */
  log?: (line: string) => void;
  /** A scan pass run here reports its cursor after every step. */
  onScanProgress?: (doneBlocks: number, totalBlocks: number) => void;
}

export class LocalHost implements PairHost {
  private rt: PairRuntime | undefined;
  private readonly log: (line: string) => void;

  constructor(
    readonly store: Store,
    readonly record: PairRecord,
    private readonly opts: LocalOptions = {},
  ) {
    this.log = opts.log ?? (() => undefined);
  }

  runtime(): PairRuntime {
    this.rt ??= openPair(this.store, this.record, { log: this.log, lockWaitMs: 0 });
    return this.rt;
  }

  verify(repair: boolean): VerifyReport {
    if (!repair) return checkOffline(this.store, this.record, { write: false });
    const lock = lockPair(this.record, 'repair', 0);
    try {
      return checkOffline(this.store, this.record, { write: true });
    } finally {
      lock.release();
    }
  }

  config(): PairConfig {
    return loadConfig(this.store, this.record.id);
  }

  updateConfig(changes: Partial<PairConfig>): PairConfig {
    // A bad stored value of another key is refused as it is (exit 1, the row named); one of a key set here is mended.
    const base = loadConfig(this.store, this.record.id, new Set(Object.keys(changes)));
    let next: PairConfig;
    try {
      next = mergeConfig(base, changes);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    saveConfig(this.store, this.record.id, changes);
    return next;
  }

  /** Runs a whole pass (resuming an interrupted one unless `restart`), then schedules the next. */
  requestScan(restart: boolean): ScanStatus {
    const rt = this.runtime();
    const config = this.config();
    rt.device.readRetries = config.readRetries;
    const scanner = this.scanner(() => config);
    if (scanner.inPass && !restart) this.log(`remapfs: resuming the interrupted scan at block ${scanner.state.cursorBlock}`);
    scanner.startPass(restart);
    while (scanner.inPass) {
      const wait = scanner.waitMs();
      if (wait > 0) sleepSyncMs(wait);
      scanner.step();
      this.opts.onScanProgress?.(scanner.inPass ? scanner.state.cursorBlock : scanner.totalBlocks, scanner.totalBlocks);
    }
    scanner.setNextDue(Date.now() + adaptiveIntervalMs(config.scanIntervalHours * 3600000, healthReport(this.store, this.record).score));
    return scanStatusOf(scanner);
  }

  scanStatus(): ScanStatus {
    const config = this.config();
    return scanStatusOf(this.scanner(() => config));
  }

  /** Only a serving daemon tracks writes (the operation is servedOnly). */
  track(): never {
    throw new RemapfsError('track', this.record.name, 'only a daemon serving the pair can do this', `mount it with "remapfs mount"`);
  }

  live(): Record<never, never> {
    return {};
  }

  /** Flushes the pair if the operation opened it. */
  flush(): void {
    this.rt?.device.flush();
  }

  close(): void {
    this.rt?.close();
    this.rt = undefined;
  }

  private scanner(config: () => PairConfig): Scanner {
    return new Scanner(this.runtime().device, this.store, this.record.id, config, Date.now, (line) => this.log(`remapfs: ${this.record.name}: ${line}`));
  }
}

/** Runs each request here: checked like one off the socket, then run() on a LocalHost. */
export function localTransport(store: Store, record: PairRecord, opts: LocalOptions = {}): Transport {
  // A promise either way: a refusal or a failure is a rejection, as over the socket.
  return (op, args) => Promise.resolve().then(() => {
    const entry = operation(op);
    if (entry.servedOnly) throw new RemapfsError(op, record.name, 'only a daemon serving the pair can do this', `mount it with "remapfs mount"`);
    const checked = checkPairRequest(toRequest(op, record.name, args));
    const host = new LocalHost(store, record, opts);
    try {
      const result = entry.run(host, checked.args as typeof args);
      host.flush();
      return result;
    } finally {
      host.close();
    }
  });
}
