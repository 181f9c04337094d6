/**
 * ScanScheduler: runs a pair's Scanner in the daemon's event loop. A pass
 * starts when it is due (the last pass plus the adaptive interval; the first
 * one a base interval after the pair was made); it steps one chunk at a time,
 * only while user I/O has been quiet for scanIdleMs (I/O on every pair the
 * daemon serves counts: they share its one thread), and no faster than
 * scanRateMiBps. A requested pass (remapfs scan) runs at full speed but still
 * yields to user I/O. After a device-wide stall the scanner asks for a wait
 * (Scanner.waitMs), which every pass honours. Clock and timers are injected for tests.
 *
 * A step that throws never stops the scheduler: the next decision comes a
 * second later. A disk error is the scan's finding (the scanner records what
 * it can) and is not logged here; an explained refusal (RemapfsError) is
 * logged once; anything else is a bug, logged once as `remapfs: bug: scan
 * step <pair>: ...` with where it was thrown.
 */
import { isDiskError } from '../block/disk-error.js';
import { RemapfsError } from '../errors.js';
import type { PairConfig } from './config.js';
import type { Scanner } from './scanner.js';
import { adaptiveIntervalMs, RateLimiter } from './score.js';

export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: SchedulerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

const MAX_SLEEP_MS = 60000;
/** The delay after a step that threw. */
const AFTER_FAILURE_MS = 1000;
/** Distinct failures remembered as logged (beyond that, new ones are no longer logged). */
const MAX_LOGGED = 100;

export interface SchedulerOptions {
  clock?: SchedulerClock;
  /** The pair, for log lines. */
  name?: string;
  log?: (line: string) => void;
}

export class ScanScheduler {
  private readonly limiter: RateLimiter;
  private timer: unknown;
  private lastIoOps: number;
  private lastIoAt = -Infinity;
  private stopped = false;
  /** A pass asked for by the user: no rate limit. */
  private urgent = false;
  private readonly clock: SchedulerClock;
  /** Failures already logged (each is logged once). */
  private readonly logged = new Set<string>();

  constructor(
    readonly scanner: Scanner,
    /** User requests served so far (a counter that only grows). */
    private readonly userIoOps: () => number,
    private readonly config: () => PairConfig,
    private readonly score: () => number,
    private readonly createdAt: number,
    private readonly opts: SchedulerOptions = {},
  ) {
    const clock = (this.clock = opts.clock ?? realClock);
    this.limiter = new RateLimiter(this.config().scanRateMiBps * 1048576, () => clock.now());
    this.lastIoOps = userIoOps();
    if (!scanner.inPass && scanner.state.nextDueAt === 0) {
      scanner.setNextDue(createdAt + this.config().scanIntervalHours * 3600000);
    }
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.scanner.inPass) this.scanner.persist();
  }

  /** Starts a full pass now (continuing one in progress unless `restart`). */
  requestPass(restart: boolean): void {
    this.urgent = true;
    this.scanner.startPass(restart);
    this.schedule(0);
  }

  /** Applies changed settings at once: the rate, and a shorter interval brings the next pass forward. */
  configChanged(): void {
    const cfg = this.config();
    this.limiter.setRate(cfg.scanRateMiBps * 1048576);
    if (!this.scanner.inPass) {
      const base = this.scanner.state.lastPassFinishedAt ?? this.createdAt;
      const due = base + adaptiveIntervalMs(cfg.scanIntervalHours * 3600000, this.score());
      if (due < this.scanner.state.nextDueAt) this.scanner.setNextDue(due);
    }
    this.schedule(0);
  }

  /** One decision; returns the delay until the next one (exposed for tests). */
  tick(): number {
    const cfg = this.config();
    const now = this.clock.now();
    const ops = this.userIoOps();
    if (ops !== this.lastIoOps) {
      this.lastIoOps = ops;
      this.lastIoAt = now;
    }
    if (!this.scanner.inPass) {
      this.urgent = false;
      if (!cfg.scanEnabled) return MAX_SLEEP_MS;
      if (now < this.scanner.state.nextDueAt) return Math.min(MAX_SLEEP_MS, this.scanner.state.nextDueAt - now);
      this.scanner.startPass();
    } else if (!cfg.scanEnabled && !this.urgent) {
      return MAX_SLEEP_MS;
    }
    const quietFor = now - this.lastIoAt;
    if (quietFor < cfg.scanIdleMs) return cfg.scanIdleMs - quietFor;
    const stalled = this.scanner.waitMs();
    if (stalled > 0) return stalled;
    if (!this.urgent) {
      const wait = this.limiter.take(cfg.scanChunkKiB * 1024);
      if (wait > 0) return wait;
    }
    this.scanner.step();
    if (!this.scanner.inPass) {
      this.urgent = false;
      this.scanner.setNextDue(this.clock.now() + adaptiveIntervalMs(cfg.scanIntervalHours * 3600000, this.score()));
    }
    return this.scanner.waitMs();
  }

  /** tick(), with a failure logged as the design note says; the delay until the next decision (exposed for tests). */
  tickOrLog(): number {
    try {
      return this.tick();
    } catch (err) {
      if (!isDiskError(err)) this.logOnce(err);
      return AFTER_FAILURE_MS;
    }
  }

  private logOnce(err: unknown): void {
    const name = this.opts.name ?? 'pair';
    let line: string;
    if (err instanceof RemapfsError) line = `remapfs: scan step ${name}: ${err.message}`;
    else {
      const where = err instanceof Error ? (err.stack?.split('\n').find((l) => l.trim().startsWith('at ')) ?? '').trim() : '';
      line = `remapfs: bug: scan step ${name}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}${where ? ` (${where})` : ''}`;
    }
    if (this.logged.has(line) || this.logged.size >= MAX_LOGGED) return;
    this.logged.add(line);
    this.opts.log?.(line);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.schedule(this.tickOrLog());
    }, ms);
  }
}
