/**
 * The surface scanner: reads the main device block range by block range, past
 * the page cache, and classifies blocks by read latency. A block that cannot
 * be read becomes pending; one at or above latencyRemapMs is copied to the
 * spare (reason scan-slow) while it still reads; one at or above
 * latencyWarnMs is recorded as slow. Remapped blocks are skipped (their data
 * is on the spare).
 *
 * A slow answer is the block's only if it repeats and the rest of the device
 * is fast meanwhile. One test of a block: it is timed twice (the faster read
 * counts), then a control block is timed (the last one that read fast, else
 * one half the device away). Outcomes:
 *  - the block is fast: ok;
 *  - the control is slow too: the device as a whole is slow now (a host's
 *    stall, writeback, another tenant). The block is not judged; the cursor
 *    stays on it and the scanner waits STALL_BACKOFF_MS (waitMs() tells the
 *    caller). After MAX_STALL_DEFERRALS such waits for one block, it is
 *    recorded as slow by its timings, so a device slow everywhere is still
 *    found, but it is never moved: its slowness was not shown to be its own;
 *  - the block is slow and the control fast: the block is a suspect, tested
 *    again after CONFIRM_WAIT_MS, and judged (recorded as slow; moved at or
 *    above latencyRemapMs) only when SLOW_CONFIRMATIONS tests in a row
 *    (device-wide waits between them allowed) all found it so; a fast read
 *    clears it. Another tenant's burst can make one test say "slow here, fast
 *    elsewhere" (measured: six healthy blocks in 150 s moved on one test), not
 *    three a second apart.
 * The latency that classes a block is the fastest of all its tests.
 * A read failing because main is not there judges nothing (deviceGone).
 *
 * Progress (cursor, counts) is persisted every few seconds and at the end of a
 * pass, so a killed scan resumes where it stopped; a suspect's tests are not
 * (they start again). The scanner does not decide when to run: ScanScheduler
 * (daemon) and the scan command call step() and honour waitMs().
 */
import { isDeviceGone, isDiskError, isKnownFailure } from '../block/disk-error.js';
import { errnoCodeOf } from '../errors.js';
import type { Store } from '../store/db.js';
import type { PairConfig } from './config.js';
import type { ScanTarget } from './scan-target.js';
import { clearSlowBlocks, loadScanState, putSlowBlock, saveScanState, type ScanState, type ScanSummary } from './history.js';
import { SparseLog } from './sparse-log.js';

const PERSIST_EVERY_MS = 2000;
/** How long the scanner waits after a control read showed the whole device slow. */
export const STALL_BACKOFF_MS = 1000;
/** Waits in a row (STALL_BACKOFF_MS apart) on a main that is not there before the scan gives up with the error. */
export const GONE_WAITS_MAX = 30;
/** At most one stall line per this long; the next one counts the stalls in between. */
export const STALL_LOG_EVERY_MS = 60_000;
/** Waits for one block before it is recorded as slow by its timings anyway (never moved). */
export const MAX_STALL_DEFERRALS = 3;
/** Tests in a row, each "slow here, fast elsewhere", before a block is judged slow (recorded; moved at latencyRemapMs). */
export const SLOW_CONFIRMATIONS = 3;
/** The wait between two tests of a suspect block. */
export const CONFIRM_WAIT_MS = 1000;

export function emptySummary(startedAt: number): ScanSummary {
  return { startedAt, finishedAt: 0, blocksScanned: 0, bytesRead: 0, unreadableBlocks: 0, slowBlocks: 0, criticalBlocks: 0, remappedSlow: 0, latencyClasses: { ok: 0, warn: 0, slow: 0, critical: 0 } };
}

export class Scanner {
  state: ScanState;
  private buf: Buffer = Buffer.alloc(0);
  private lastPersist = 0;
  /** The last block that read fast: the control of a slow one (null: none yet). */
  private fastBlock: number | null = null;
  /** While the device is slow as a whole: no reads before this time. */
  private backoffUntil = 0;
  /** The block the cursor waits on (a device-wide stall or a suspect's next test), and its tests so far. */
  private waitBlock = -1;
  private stallDeferrals = 0;
  private confirmations = 0;
  private goneWaits = 0; // waits in a row on a main that is not there (deviceGone)
  private waitBlockMs = Infinity; // the fastest read of waitBlock over its tests
  /** Device-wide stalls seen by this scanner (not persisted). */
  stalls = 0;
  /** Stall, "stayed slow" and "not there" lines: each kind at most once per STALL_LOG_EVERY_MS. */
  private readonly stallLines = new SparseLog(STALL_LOG_EVERY_MS);
  private readonly stayedLines = new SparseLog(STALL_LOG_EVERY_MS);
  private readonly goneLines = new SparseLog(STALL_LOG_EVERY_MS);

  constructor(
    private readonly dev: ScanTarget,
    private readonly store: Store,
    private readonly pairId: number,
    private readonly config: () => PairConfig,
    private readonly now: () => number = Date.now,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.state = loadScanState(store, pairId, dev.virtualBlocks, (why) => log(`ignoring the stored scan progress: ${why}`));
  }

  get inPass(): boolean {
    return this.state.passStartedAt !== null;
  }

  get totalBlocks(): number {
    return this.dev.virtualBlocks;
  }

  get progress(): number {
    return this.totalBlocks ? this.state.cursorBlock / this.totalBlocks : 1;
  }

  /** Starts a pass at block 0 (or keeps the one in progress unless `restart`). */
  startPass(restart = false): void {
    if (this.inPass && !restart) return;
    const t = this.now();
    this.state = { ...this.state, cursorBlock: 0, passStartedAt: t, currentSummary: emptySummary(t) };
    this.persist();
    this.store.events.add(this.pairId, t, 'scan-start', null, null, null);
  }

  /** How long the caller should wait before the next step (0: now); non-zero after a device-wide stall or before a suspect's next test. */
  waitMs(): number {
    return Math.max(0, this.backoffUntil - this.now());
  }

  /** Scans the next chunk; returns the bytes read. Finishes the pass at the end of the device. */
  step(): number {
    if (!this.inPass || this.waitMs() > 0) return 0;
    if (this.waitBlock !== this.state.cursorBlock) this.forgetWait(); // the cursor left the block: it read fast, was remapped, or a pass ended
    const cfg = this.config();
    const bs = this.dev.blockSize;
    const chunkBlocks = Math.max(1, Math.floor((cfg.scanChunkKiB * 1024) / bs));
    const from = this.state.cursorBlock;
    const to = Math.min(this.totalBlocks, from + chunkBlocks);
    if (this.buf.length < chunkBlocks * bs) this.buf = Buffer.alloc(chunkBlocks * bs);
    const summary = this.state.currentSummary ?? emptySummary(this.now());
    let bytes = 0;
    let done = to;
    for (let b = from; b < to; ) {
      if (this.dev.isRemapped(b)) {
        b++;
        continue;
      }
      let end = b + 1;
      while (end < to && !this.dev.isRemapped(end)) end++;
      const run = this.scanRun(b, end, cfg, summary);
      bytes += run.bytes;
      if (run.stalledAt !== null) {
        done = run.stalledAt;
        break;
      }
      b = end;
    }
    summary.blocksScanned += done - from;
    summary.bytesRead += bytes;
    this.state.cursorBlock = done;
    if (done > from) this.state.maxBlockScanned = Math.max(this.state.maxBlockScanned, done - 1);
    this.state.currentSummary = summary;
    if (done >= this.totalBlocks) this.finishPass();
    else if (this.now() - this.lastPersist >= PERSIST_EVERY_MS) this.persist();
    return bytes;
  }

  /** Ends the pass; `nextDueAt` is set by the caller's schedule. */
  private finishPass(): void {
    const t = this.now();
    const summary = this.state.currentSummary ?? emptySummary(t);
    summary.finishedAt = t;
    this.state = {
      ...this.state,
      cursorBlock: 0,
      passStartedAt: null,
      passesCompleted: this.state.passesCompleted + 1,
      lastPassFinishedAt: t,
      lastSummary: summary,
      currentSummary: null,
    };
    this.persist();
    this.store.events.add(this.pairId, t, 'scan', null, summary.unreadableBlocks, JSON.stringify(summary));
    this.log(
      `scan finished: ${summary.blocksScanned} blocks, ${summary.unreadableBlocks} unreadable, ${summary.slowBlocks} slow, ${summary.remappedSlow} remapped for slowness`,
    );
  }

  setNextDue(at: number): void {
    this.state.nextDueAt = at;
    this.persist();
  }

  persist(): void {
    this.lastPersist = this.now();
    saveScanState(this.store, this.pairId, this.state);
  }

  /**
   * Reads blocks [first, end) as one request; on an error or a slow answer, block by block.
   * Returns the bytes read, and the block it stopped at to wait (null: none).
   */
  private scanRun(first: number, end: number, cfg: PairConfig, summary: ScanSummary): { bytes: number; stalledAt: number | null } {
    const bs = this.dev.blockSize;
    const n = end - first;
    const view = this.buf.subarray(0, n * bs);
    let ms: number;
    try {
      ms = this.dev.timedMainRead(view, first * bs);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      ms = Infinity;
    }
    if (ms !== Infinity) this.goneWaits = 0; // main answered
    if (ms < cfg.latencyWarnMs) {
      summary.latencyClasses.ok += n;
      this.fastBlock = end - 1;
      clearSlowBlocks(this.store, this.pairId, first, end); // each block of the run read fast: none is slow now
      return { bytes: n * bs, stalledAt: null };
    }
    let bytes = n * bs;
    for (let b = first; b < end; b++) {
      bytes += bs;
      if (this.scanBlock(b, cfg, summary) === 'wait') return { bytes, stalledAt: b };
    }
    return { bytes, stalledAt: null };
  }

  /** Times the control block; true when it is slow too (the device is slow as a whole right now). */
  private deviceSlow(block: number, cfg: PairConfig): boolean {
    const n = this.totalBlocks;
    let control = this.fastBlock !== null && this.fastBlock !== block ? this.fastBlock : (block + Math.floor(n / 2)) % n;
    if (control === block || this.dev.isRemapped(control)) control = (block + 1) % n;
    if (control === block || this.dev.isRemapped(control)) return false;
    const bs = this.dev.blockSize;
    try {
      return this.dev.timedMainRead(this.buf.subarray(0, bs), control * bs) >= cfg.latencyWarnMs;
    } catch (err) {
      if (!isDiskError(err)) throw err;
      return false; // the control is bad itself: it says nothing about the device
    }
  }

  /** Main is not there: the cursor waits on the block; the GONE_WAITS_MAX-th wait in a row throws `err` (scan stops). */
  private deviceGone(block: number, err: unknown): 'wait' {
    this.forgetWait();
    if (++this.goneWaits % GONE_WAITS_MAX === 0) throw err;
    this.backoffUntil = this.now() + STALL_BACKOFF_MS;
    this.goneLines.log(this.now(), this.log, `scan: main is not there at block ${block} (${errnoCodeOf(err) ?? 'error'}); trying again in ${STALL_BACKOFF_MS} ms`, 'such wait(s)');
    return 'wait';
  }

  /** Classifies one block; 'wait' when it was not judged yet (a device-wide stall, or a suspect to test again). */
  private scanBlock(block: number, cfg: PairConfig, summary: ScanSummary): 'done' | 'wait' {
    const bs = this.dev.blockSize;
    let ms: number;
    try {
      ms = this.dev.timedMainRead(this.buf.subarray(0, bs), block * bs);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      if (isDeviceGone(err)) return this.deviceGone(block, err);
      let pending: boolean;
      try {
        pending = this.dev.scanFoundUnreadable(block);
      } catch (again) {
        if (isDeviceGone(again)) return this.deviceGone(block, again);
        throw again;
      }
      summary.unreadableBlocks++;
      if (pending) this.log(`scan: block ${block} is unreadable, now pending`);
      this.forgetWait();
      return 'done';
    }
    this.goneWaits = 0;
    // One slow answer can be the host's hiccup: a block counts as slow only if a second read is slow too.
    if (ms >= cfg.latencyWarnMs) {
      try {
        ms = Math.min(ms, this.dev.timedMainRead(this.buf.subarray(0, bs), block * bs));
      } catch (err) {
        if (!isDiskError(err)) throw err;
        // It read once; the slow timing stands.
      }
    }
    if (this.waitBlock !== block) {
      this.forgetWait();
      this.waitBlock = block;
    }
    this.waitBlockMs = Math.min(this.waitBlockMs, ms);
    if (ms < cfg.latencyWarnMs) {
      summary.latencyClasses.ok++;
      this.fastBlock = block;
      clearSlowBlocks(this.store, this.pairId, block, block + 1);
      this.forgetWait();
      return 'done';
    }
    // ... and only while the rest of the device is fast: a stall longer than two reads is not the block's.
    const deviceSlow = this.deviceSlow(block, cfg);
    if (deviceSlow && this.stallDeferrals < MAX_STALL_DEFERRALS) {
      this.stallDeferrals++;
      this.stalls++;
      this.backoffUntil = this.now() + STALL_BACKOFF_MS;
      if (this.stallDeferrals === 1) {
        this.stallLines.log(this.now(), this.log, `scan: the whole device is slow at block ${block} (a stall?); timing it again in ${STALL_BACKOFF_MS} ms`, 'stalled block(s)');
      }
      return 'wait';
    }
    if (!deviceSlow) {
      this.confirmations++;
      if (this.confirmations < SLOW_CONFIRMATIONS) {
        this.backoffUntil = this.now() + CONFIRM_WAIT_MS;
        return 'wait';
      }
    }
    // Judged: slow on its own in SLOW_CONFIRMATIONS tests (moved at latencyRemapMs), or slow with the device (recorded only).
    const judgedMs = this.waitBlockMs;
    const move = !deviceSlow && judgedMs >= cfg.latencyRemapMs;
    if (deviceSlow) {
      this.stayedLines.log(this.now(), this.log, `scan: the whole device stayed slow at block ${block}; recorded as slow (${Math.round(judgedMs)} ms), not moved`, 'such block(s)');
    }
    this.forgetWait();
    const t = this.now();
    if (judgedMs >= cfg.latencyCriticalMs) {
      summary.latencyClasses.critical++;
      summary.criticalBlocks++;
    } else if (judgedMs >= cfg.latencyRemapMs) summary.latencyClasses.slow++;
    else summary.latencyClasses.warn++;
    summary.slowBlocks++;
    putSlowBlock(this.store, this.pairId, block, Math.round(judgedMs * 10) / 10, t);
    if (move) {
      try {
        const r = this.dev.remapBlock(block, 'scan-slow');
        if (!r.already) summary.remappedSlow++;
      } catch (err) {
        if (!isKnownFailure(err)) throw err;
        this.log(`scan: could not remap slow block ${block}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return 'done';
  }

  private forgetWait(): void {
    this.waitBlock = -1;
    this.stallDeferrals = 0;
    this.confirmations = 0;
    this.waitBlockMs = Infinity;
  }
}
