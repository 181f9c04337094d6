/**
 * Everything the daemon runs for one pair: the opened pair, its settings (kept
 * in memory, persisted on change), its background scanner, and the live
 * control files under `.remapfs/<name>/`.
 */
import * as crypto from 'crypto';
import type { PairRuntime } from '../pair/pair.js';
import type { Store } from '../store/db.js';
import type { ControlFile } from '../fs/ops.js';
import { DEFAULT_CONFIG, mergeConfig, type PairConfig, parseConfigText } from '../health/config.js';
import { loadConfig, saveConfig } from '../health/history.js';
import { healthReport } from '../health/report.js';
import { Scanner } from '../health/scanner.js';
import { ScanScheduler } from '../health/scheduler.js';
import { labelBlockOf } from '../format/label-codec.js';
import type { BlockDevice } from '../block/device.js';
import { EvacTracking } from '../remap/evac-tracking.js';
import { RemapfsError } from '../errors.js';

export class PairService {
  config: PairConfig;
  /**
   * Why the stored settings could not be used (a bad config row), or undefined. The pair is still served, with the
   * default settings and the background scanner off, until `config` sets good values (updateConfig).
   */
  settingsProblem: RemapfsError | undefined;
  private settingsRetryAt = 0;
  readonly scanner: Scanner;
  readonly scheduler: ScanScheduler;
  /** Stacked over the served device while an evacuation copies (the 'track' operation). */
  private tracking: EvacTracking | undefined;
  /** Names the tracking in force; random, so a token from before a daemon restart names nothing. */
  private trackingToken = 0;
  /** The FUSE engine serving the pair and its own counters (set by the daemon once mounted). */
  engineInfo: () => object = () => ({});

  constructor(
    readonly rt: PairRuntime,
    private readonly store: Store,
    private readonly log: (line: string) => void,
    /** User requests on every pair of the daemon; the scanner yields to all of them. */
    userIoOps: () => number = () => rt.device.counters.readOps + rt.device.counters.writeOps,
  ) {
    // Bad stored settings leave the data path alone: the defaults, scanner off, one line in the log.
    this.config = { ...DEFAULT_CONFIG, scanEnabled: false };
    if (!this.reloadSettings(false)) {
      log(`remapfs: ${rt.record.name}: ${this.settingsProblem?.message}; serving the pair with the default settings and the background scanner off until "remapfs config" sets good values`);
    }
    rt.device.readRetries = this.config.readRetries;
    const prefix = `remapfs: ${rt.record.name}: `;
    this.scanner = new Scanner(rt.device, store, rt.record.id, () => this.config, Date.now, (line) => log(prefix + line));
    this.scheduler = new ScanScheduler(this.scanner, userIoOps, () => this.scannerConfig(), () => healthReport(store, rt.record).score, rt.record.createdAt, { name: rt.record.name, log });
  }

  /** The scheduler's settings: while the stored ones are bad, they are read again at most once a minute (a deleted row). */
  private scannerConfig(): PairConfig {
    if (this.settingsProblem && Date.now() >= this.settingsRetryAt) {
      this.settingsRetryAt = Date.now() + 60000;
      if (this.reloadSettings()) setImmediate(() => this.scheduler.configChanged()); // not from inside its own tick
    }
    return this.config;
  }

  /** Reads the stored settings (again, while they are bad); true when they are good now (and in force). */
  private reloadSettings(announce = true): boolean {
    try {
      this.config = loadConfig(this.store, this.rt.record.id);
    } catch (err) {
      if (!(err instanceof RemapfsError)) throw err;
      this.settingsProblem = err;
      return false;
    }
    this.settingsProblem = undefined;
    this.rt.device.readRetries = this.config.readRetries;
    if (announce) this.log(`remapfs: ${this.name}: the stored settings are good again; the background scanner follows them`);
    return true;
  }

  /** The settings in force; refused (the stored row named) while the stored ones are bad (read again first). */
  settings(): PairConfig {
    if (this.settingsProblem && this.reloadSettings()) this.scheduler.configChanged();
    if (this.settingsProblem) throw this.settingsProblem;
    return this.config;
  }

  get name(): string {
    return this.rt.record.name;
  }

  start(): void {
    this.scheduler.start();
  }

  stop(): void {
    this.scheduler.stop();
    this.tracking?.remove();
    this.tracking = undefined;
  }

  /**
   * The evacuation's write tracking: 'start' stacks EvacTracking over the
   * device, serves it through `serve` and returns [its token]; 'take' returns
   * (and forgets) the blocks written since; 'stop' serves the bare device
   * again. A start replaces a tracking left by an evacuation that never
   * stopped (killed); its owner's next take or stop is then refused, as is
   * any token after a daemon restart, so no evacuation takes "nothing was
   * written" from a tracking that is not its own.
   */
  track(action: 'start' | 'take' | 'stop', token: number, serve: (device: BlockDevice) => void): number[] {
    if (action === 'start') {
      this.tracking?.remove();
      this.tracking = new EvacTracking(this.rt.device);
      this.trackingToken = crypto.randomInt(1, 2 ** 47);
      serve(this.tracking);
      return [this.trackingToken];
    }
    if (!this.tracking || token !== this.trackingToken) {
      throw new RemapfsError('track writes of', this.name, 'this evacuation\'s write tracking has ended (another evacuation of the pair started, or the daemon restarted)', 'run evacuate again: it resumes and checks what it copied');
    }
    if (action === 'take') return this.tracking.take();
    this.tracking.remove();
    this.tracking = undefined;
    serve(this.rt.device);
    return [];
  }

  /** Validates, applies at once and persists; returns the settings in force. */
  updateConfig(changes: Partial<PairConfig>): PairConfig {
    // Bad stored settings: the change is made over the stored ones (a bad row of a key set here is mended; one of
    // another key is refused as it is, and nothing changes).
    const base = this.settingsProblem ? loadConfig(this.store, this.rt.record.id, new Set(Object.keys(changes))) : this.config;
    const next = mergeConfig(base, changes);
    saveConfig(this.store, this.rt.record.id, changes);
    this.config = next;
    this.settingsProblem = undefined;
    this.rt.device.readRetries = next.readRetries;
    this.scheduler.configChanged();
    this.log(`remapfs: ${this.name}: settings changed: ${JSON.stringify(changes)}`);
    return next;
  }

  stats(): object {
    return {
      version: 1,
      pair: this.name,
      time: new Date().toISOString(),
      counters: this.rt.device.counters,
      ...this.engineInfo(),
      remappedBlocks: this.rt.index.remappedCount - (this.rt.record.mainLabel && this.rt.index.spareBlockOf(labelBlockOf(this.rt.record.mainBytes, this.rt.record.blockSize)) >= 0 ? 1 : 0),
      pendingBlocks: this.rt.index.pendingCount,
      freeSpareBlocks: this.rt.index.freeSpareBlocks,
      metadataSequence: this.rt.journal.state.sequence,
      database: this.store.lost ? `${this.store.lost}; metadata changes refused` : 'ok',
      scan: { inProgress: this.scanner.inPass, cursorBlock: this.scanner.state.cursorBlock, totalBlocks: this.scanner.totalBlocks },
    };
  }

  controlFiles(): Record<string, ControlFile> {
    return {
      stats: { read: () => JSON.stringify(this.stats(), null, 2) },
      health: { read: () => JSON.stringify(healthReport(this.store, this.rt.record), null, 2) },
      config: {
        read: () => JSON.stringify(this.settings(), null, 2),
        write: (text) => void this.updateConfig(parseConfigText(text)),
      },
    };
  }
}
