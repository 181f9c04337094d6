/**
 * The surface scanner: reads the main device block range by block range, past
 * the page cache, and classifies blocks by read latency (a block is timed
 * again before it counts as slow, so one stall of the host does not move a
 * healthy block). A block that cannot be read becomes pending; one at or
 * above latencyRemapMs is copied to the spare (reason scan-slow) while it
 * still reads; one at or above latencyWarnMs is recorded as slow. Remapped
 * blocks are skipped (their data is on the spare).
 *
 * Progress (cursor, counts) is persisted every few seconds and at the end of a
 * pass, so a killed scan resumes where it stopped. The scanner does not decide
 * when to run: ScanScheduler (daemon) and the scan command call step().
 */
import { isDiskError, isKnownFailure } from '../block/disk-error.js';
import type { Store } from '../store/db.js';
import type { PairConfig } from './config.js';
import type { ScanTarget } from './scan-target.js';
import { clearSlowBlock, loadScanState, putSlowBlock, saveScanState, type ScanState, type ScanSummary } from './history.js';

const PERSIST_EVERY_MS = 2000;

export function emptySummary(startedAt: number): ScanSummary {
  return { startedAt, finishedAt: 0, blocksScanned: 0, bytesRead: 0, unreadableBlocks: 0, slowBlocks: 0, criticalBlocks: 0, remappedSlow: 0, latencyClasses: { ok: 0, warn: 0, slow: 0, critical: 0 } };
}

export class Scanner {
  state: ScanState;
  private buf: Buffer = Buffer.alloc(0);
  private lastPersist = 0;

  constructor(
    private readonly dev: ScanTarget,
    private readonly store: Store,
    private readonly pairId: number,
    private readonly config: () => PairConfig,
    private readonly now: () => number = Date.now,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.state = loadScanState(store, pairId);
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

  /** Scans the next chunk; returns the bytes read. Finishes the pass at the end of the device. */
  step(): number {
    if (!this.inPass) return 0;
    const cfg = this.config();
    const bs = this.dev.blockSize;
    const chunkBlocks = Math.max(1, Math.floor((cfg.scanChunkKiB * 1024) / bs));
    const from = this.state.cursorBlock;
    const to = Math.min(this.totalBlocks, from + chunkBlocks);
    if (this.buf.length < chunkBlocks * bs) this.buf = Buffer.alloc(chunkBlocks * bs);
    const summary = this.state.currentSummary ?? emptySummary(this.now());
    let bytes = 0;
    for (let b = from; b < to; ) {
      if (this.dev.isRemapped(b)) {
        b++;
        continue;
      }
      let end = b + 1;
      while (end < to && !this.dev.isRemapped(end)) end++;
      bytes += this.scanRun(b, end, cfg, summary);
      b = end;
    }
    summary.blocksScanned += to - from;
    summary.bytesRead += bytes;
    this.state.cursorBlock = to;
    this.state.maxBlockScanned = Math.max(this.state.maxBlockScanned, to - 1);
    this.state.currentSummary = summary;
    if (to >= this.totalBlocks) this.finishPass();
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

  /** Reads blocks [first, end) as one request; on an error or a slow answer, block by block. */
  private scanRun(first: number, end: number, cfg: PairConfig, summary: ScanSummary): number {
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
    if (ms < cfg.latencyWarnMs) {
      summary.latencyClasses.ok += n;
      return n * bs;
    }
    for (let b = first; b < end; b++) this.scanBlock(b, cfg, summary);
    return n * bs + n * bs;
  }

  private scanBlock(block: number, cfg: PairConfig, summary: ScanSummary): void {
    const bs = this.dev.blockSize;
    let ms: number;
    try {
      ms = this.dev.timedMainRead(this.buf.subarray(0, bs), block * bs);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      summary.unreadableBlocks++;
      if (this.dev.scanFoundUnreadable(block)) this.log(`scan: block ${block} is unreadable, now pending`);
      return;
    }
    // One slow answer can be the host's hiccup: a block counts as slow only if a second read is slow too.
    if (ms >= cfg.latencyWarnMs) {
      try {
        ms = Math.min(ms, this.dev.timedMainRead(this.buf.subarray(0, bs), block * bs));
      } catch (err) {
        if (!isDiskError(err)) throw err;
        // It read once; the slow timing stands.
      }
    }
    const t = this.now();
    if (ms >= cfg.latencyCriticalMs) {
      summary.latencyClasses.critical++;
      summary.criticalBlocks++;
    } else if (ms >= cfg.latencyRemapMs) summary.latencyClasses.slow++;
    else if (ms >= cfg.latencyWarnMs) summary.latencyClasses.warn++;
    else {
      summary.latencyClasses.ok++;
      clearSlowBlock(this.store, this.pairId, block);
      return;
    }
    summary.slowBlocks++;
    putSlowBlock(this.store, this.pairId, block, Math.round(ms * 10) / 10, t);
    if (ms >= cfg.latencyRemapMs) {
      try {
        const r = this.dev.remapBlock(block, 'scan-slow');
        if (!r.already) summary.remappedSlow++;
      } catch (err) {
        if (!isKnownFailure(err)) throw err;
        this.log(`scan: could not remap slow block ${block}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
