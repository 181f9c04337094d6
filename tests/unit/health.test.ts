/**
 * Health arithmetic and rendering, with tables of cases and an injected clock:
 * settings, score, adaptive interval, trend and prediction, the rate limiter,
 * the scan scheduler, the map, and the Prometheus exposition format.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BlockDevice } from '../../lib/block/device.js';
import { FaultDevice, ioError } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { DEFAULT_CONFIG, mergeConfig, type PairConfig, parseConfigText, parseConfigValue } from '../../lib/health/config.js';
import { cells, LEGEND_CHAR_PX, renderBar, renderSvg, STATE_COLOURS, type MapInput } from '../../lib/health/map.js';
import { renderPrometheus } from '../../lib/health/prometheus.js';
import { healthReport } from '../../lib/health/report.js';
import { slowBlocks } from '../../lib/health/history.js';
import { CONFIRM_WAIT_MS, GONE_WAITS_MAX, MAX_STALL_DEFERRALS, Scanner, SLOW_CONFIRMATIONS, STALL_BACKOFF_MS, STALL_LOG_EVERY_MS } from '../../lib/health/scanner.js';
import type { ScanTarget } from '../../lib/health/scan-target.js';
import { ScanScheduler, type SchedulerClock } from '../../lib/health/scheduler.js';
import { adaptiveIntervalMs, DAY_MS, healthScore, RateLimiter, trend } from '../../lib/health/score.js';
import { RemapIndex } from '../../lib/remap/index-table.js';
import { spareLayout } from '../../lib/format/layout.js';
import { RemapDevice, type RemapJournal } from '../../lib/remap/remap-device.js';
import { Store } from '../../lib/store/db.js';
import { parseExposition, wellFormed } from '../helpers/formats.js';
import { match } from '../helpers/match.js';
import { RemapfsError } from '../../lib/errors.js';

describe('settings', () => {
  it.each([
    ['scanRateMiBps', '8', 8],
    ['scanEnabled', 'off', false],
    ['scanEnabled', 'true', true],
    ['readRetries', '0', 0],
    ['latencyWarnMs', 35, 35],
  ])('%s=%s parses to %s', (k, raw, want) => {
    expect(parseConfigValue(k, raw)).toBe(want);
  });

  it.each([
    ['nope', '1', /unknown setting/],
    ['scanRateMiBps', 'fast', /must be a number/],
    ['scanRateMiBps', '0', /from 0.01/],
    ['readRetries', '1.5', /whole number/],
    ['scanEnabled', 'maybe', /true or false/],
  ])('%s=%s is refused', (k, raw, re) => {
    expect(() => parseConfigValue(k, raw)).toThrow(re);
  });

  it('reads key=value lines and JSON, all or nothing', () => {
    expect(parseConfigText('scanRateMiBps=2\n# comment\nlatencyWarnMs = 30\n')).toEqual({ scanRateMiBps: 2, latencyWarnMs: 30 });
    expect(parseConfigText('{"scanEnabled": false}')).toEqual({ scanEnabled: false });
    expect(() => parseConfigText('scanRateMiBps=2\nbad=1')).toThrow(/unknown setting/);
    expect(() => mergeConfig(DEFAULT_CONFIG, { latencyWarnMs: 200 })).toThrow(/latencyWarnMs <= latencyRemapMs/);
  });
});

describe('health score', () => {
  const clean = { pendingBlocks: 0, spareUsedBlocks: 0, spareTotalBlocks: 1000, remapRatePerDay: 0, accelerating: false, readErrorRate: 0, slowBlocks: 0 };
  it.each([
    ['a clean pair', {}, 100, 'good'],
    ['one pending block', { pendingBlocks: 1 }, 90, 'good'],
    ['five pending blocks', { pendingBlocks: 5 }, 60, 'poor'],
    ['half the spare used', { spareUsedBlocks: 500 }, 85, 'fair'],
    ['all the spare used', { spareUsedBlocks: 1000 }, 70, 'fair'],
    ['3 remaps a day', { remapRatePerDay: 3 }, 90, 'good'],
    ['3 a day, accelerating', { remapRatePerDay: 3, accelerating: true }, 85, 'fair'],
    ['1 unreadable in 10,000', { readErrorRate: 0.0001 }, 99, 'good'],
    ['12 slow blocks', { slowBlocks: 12 }, 90, 'good'],
    ['everything at once', { pendingBlocks: 9, spareUsedBlocks: 1000, remapRatePerDay: 100, accelerating: true, readErrorRate: 1, slowBlocks: 50 }, 0, 'failing'],
  ])('%s', (_name, change, score, status) => {
    const r = healthScore({ ...clean, ...change });
    expect(r.score).toBe(score);
    expect(r.status).toBe(status);
  });
});

describe('adaptive interval', () => {
  it.each([
    [100, 24],
    [50, 24 / 4.5],
    [0, 3],
  ])('score %i gives %f hours', (score, hours) => {
    expect(adaptiveIntervalMs(24 * 3600000, score) / 3600000).toBeCloseTo(hours, 6);
  });
});

describe('trend and prediction', () => {
  const now = Date.UTC(2026, 10, 23, 12);
  it('no remaps: rate 0, no prediction', () => {
    expect(trend([], 100, now)).toEqual({ ratePerDay: 0, accelerating: false, daysToExhaustion: null, exhaustionDate: null });
  });

  it('a steady 2 a day for 30 days converges near 2 and predicts from the free blocks', () => {
    const times: number[] = [];
    for (let d = 0; d < 30; d++) times.push(now - d * DAY_MS - 1000, now - d * DAY_MS - 2000);
    const t = trend(times, 100, now);
    expect(t.ratePerDay).toBeGreaterThan(1.99);
    expect(t.ratePerDay).toBeLessThanOrEqual(2);
    expect(t.accelerating).toBe(false);
    expect(t.daysToExhaustion).toBeCloseTo(100 / t.ratePerDay, 0);
    expect(t.exhaustionDate).toBe(new Date(now + (t.daysToExhaustion as number) * DAY_MS).toISOString().slice(0, 10));
  });

  it('a burst in the last days is accelerating', () => {
    const times = [now - 20 * DAY_MS, now - 2 * DAY_MS, now - DAY_MS, now - 1000, now - 2000, now - 3000];
    expect(trend(times, 1000, now).accelerating).toBe(true);
  });
});

describe('rate limiter (injected clock)', () => {
  it('allows the rate per second and no burst beyond one second of it', () => {
    let t = 0;
    const rl = new RateLimiter(1000, () => t);
    expect(rl.take(600)).toBe(0);
    expect(rl.take(600)).toBe(200); // 400 left, 200 ms to earn 200 more
    t += 200;
    expect(rl.take(600)).toBe(0);
    t += 10 * 1000; // a long idle time refills only one second's worth
    expect(rl.take(1000)).toBe(0);
    expect(rl.take(1)).toBe(1);
    rl.setRate(2000);
    t += 500;
    expect(rl.take(1000)).toBe(0);
  });
});

describe('scan scheduler (injected clock)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-sched-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  class FakeClock implements SchedulerClock {
    t = 1_000_000;
    now = () => this.t;
    setTimeout = () => 0;
    clearTimeout = () => undefined;
  }

  const journal: RemapJournal = { commitRemap: () => undefined, commitRetired: () => undefined };

  /** Reads covering `byteOffset` answer 60 ms late, the first `slowReads` times only (a host's stall). */
  function stallingDevice(next: BlockDevice, byteOffset: number, slowReads: number): BlockDevice {
    let left = slowReads;
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const read = (buf: Buffer, off: number) => {
      if (left > 0 && off <= byteOffset && byteOffset < off + buf.length) {
        left--;
        Atomics.wait(sleeper, 0, 0, 60);
      }
      next.read(buf, off);
    };
    return { name: 'stalling', sizeBytes: next.sizeBytes, read, readUncached: read, write: (b, o) => next.write(b, o), flush: () => next.flush(), close: () => next.close() };
  }

  function world(config: Partial<PairConfig>, stalls?: { block: number; slowReads: number }) {
    const store = Store.open(path.join(dir, `s${Math.random().toString(36).slice(2)}.db`), { create: true });
    const pair = store.pairs.insert({ name: 'p', uuid: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/x', sparePath: '/y', blockSize: 4096, mainBytes: 4 * 1048576, spareBytes: 1048576, createdAt: 1_000_000, metaSeq: 1 });
    const fault = new FaultDevice(new MemoryDevice('main', 4 * 1048576));
    const main = stalls ? stallingDevice(fault, stalls.block * 4096, stalls.slowReads) : fault;
    const index = new RemapIndex(1024, spareLayout(1048576, 4096));
    const dev = new RemapDevice('p', main, new MemoryDevice('spare', 1048576), 4096, index, journal);
    const cfg: PairConfig = { ...DEFAULT_CONFIG, ...config };
    const clock = new FakeClock();
    const scanner = new Scanner(dev, store, pair.id, () => cfg, clock.now);
    const score = { value: 100 };
    const sched = new ScanScheduler(scanner, () => dev.counters.readOps + dev.counters.writeOps, () => cfg, () => score.value, pair.createdAt, { clock });
    return { store, pair, dev, scanner, sched, clock, score, cfg };
  }

  it('waits for the first pass one base interval after the pair was made', () => {
    const w = world({ scanIntervalHours: 1 });
    expect(w.scanner.state.nextDueAt).toBe(1_000_000 + 3600000);
    expect(w.sched.tick()).toBe(60000); // capped sleep
    w.clock.t = 1_000_000 + 3600000;
    w.sched.tick(); // due: starts the pass (and waits for quiet I/O first)
    expect(w.scanner.inPass).toBe(true);
  });

  it('yields to user I/O, keeps to the rate, and schedules the next pass adaptively', () => {
    const w = world({ scanIntervalHours: 1, scanRateMiBps: 1, scanChunkKiB: 256, scanIdleMs: 100 });
    w.clock.t += 3600000;
    expect(w.sched.tick()).toBe(0); // due: starts and scans a chunk
    expect(w.scanner.state.cursorBlock).toBe(64);
    w.dev.counters.readOps++; // user I/O
    w.clock.t += 50;
    expect(w.sched.tick()).toBe(100); // waits until I/O has been quiet for 100 ms
    w.clock.t += 60;
    expect(w.sched.tick()).toBe(40);
    w.clock.t += 40;
    // 1 MiB/s, 256 KiB chunks: the bucket held 1 MiB, less the first chunk, plus 150 ms of refill (~157 KiB),
    // so three chunks go at once; the fourth waits for the missing ~100 KiB (100 ms); then one per 250 ms.
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(w.sched.tick());
    expect(got).toEqual([0, 0, 0, 100]);
    w.clock.t += 100;
    expect(w.sched.tick()).toBe(0);
    expect(w.sched.tick()).toBe(250);
    w.clock.t += 250;
    expect(w.sched.tick()).toBe(0);
    expect(w.scanner.state.cursorBlock).toBe(6 * 64);
    // Finish the pass at a score of 50: next pass in 1 h / 4.5.
    w.score.value = 50;
    for (let i = 0; i < 100 && w.scanner.inPass; i++) {
      w.clock.t += 1000;
      w.sched.tick();
    }
    expect(w.scanner.inPass).toBe(false);
    expect(w.scanner.state.passesCompleted).toBe(1);
    expect(w.scanner.state.nextDueAt - w.clock.t).toBeCloseTo(3600000 / 4.5, 0);
  });

  /** A clock whose timers run only when the test says so. */
  class ManualClock implements SchedulerClock {
    t = 1_000_000;
    now = () => this.t;
    pending: { fn: () => void; ms: number } | undefined;
    setTimeout = (fn: () => void, ms: number) => {
      this.pending = { fn, ms };
      return 1;
    };
    clearTimeout = () => {
      this.pending = undefined;
    };
    fire(): number {
      const p = this.pending;
      if (!p) throw new Error('the scheduler has no timer: it stopped');
      this.pending = undefined;
      p.fn();
      return this.pending ? (this.pending as { ms: number }).ms : -1;
    }
  }

  /** A scheduler over w's scanner, with timers the test fires and its log lines collected. */
  function manual(w: ReturnType<typeof world>): { sched: ScanScheduler; clock: ManualClock; logs: string[] } {
    const clock = new ManualClock();
    const logs: string[] = [];
    const sched = new ScanScheduler(w.scanner, () => w.dev.counters.readOps, () => w.cfg, () => 100, w.pair.createdAt, { clock, name: 'p', log: (l) => logs.push(l) });
    return { sched, clock, logs };
  }

  it('a step that fails with a bug is logged once as "bug:", and the scheduler goes on', () => {
    const w = world({ scanIdleMs: 0 });
    w.scanner.startPass();
    const step = w.scanner.step.bind(w.scanner);
    w.scanner.step = () => {
      throw new TypeError('boom');
    };
    const m = manual(w);
    m.sched.start();
    for (let i = 0; i < 5; i++) expect(m.clock.fire()).toBe(1000);
    expect(m.logs).toEqual([match.string(/^remapfs: bug: scan step p: TypeError: boom \(at .*\)$/)]);
    // A different bug is a new line, once too.
    w.scanner.step = () => {
      throw new RangeError('bad range');
    };
    m.clock.fire();
    m.clock.fire();
    expect(m.logs).toHaveLength(2);
    expect(m.logs[1]).toMatch(/^remapfs: bug: scan step p: RangeError: bad range/);
    // Fixed: the pass goes on from where it was.
    w.scanner.step = step;
    expect(m.clock.fire()).toBe(0);
    expect(w.scanner.state.cursorBlock).toBeGreaterThan(0);
    m.sched.stop();
  });

  it("a step that fails with a disk error is the scan's finding: not logged, and the scheduler goes on", () => {
    const w = world({ scanIdleMs: 0 });
    w.scanner.startPass();
    const step = w.scanner.step.bind(w.scanner);
    w.scanner.step = () => {
      throw ioError('read', 'main');
    };
    const m = manual(w);
    m.sched.start();
    expect(m.clock.fire()).toBe(1000);
    expect(m.clock.fire()).toBe(1000);
    expect(m.logs).toEqual([]);
    w.scanner.step = step;
    expect(m.clock.fire()).toBe(0);
    expect(w.scanner.state.cursorBlock).toBeGreaterThan(0);
    m.sched.stop();
  });

  it('a requested pass ignores the rate limit but still yields to user I/O', () => {
    const w = world({ scanRateMiBps: 0.01, scanIdleMs: 100 });
    w.clock.t += 200;
    w.sched.requestPass(false);
    let steps = 0;
    while (w.scanner.inPass && steps < 100) {
      expect(w.sched.tick()).toBe(0);
      steps++;
    }
    expect(steps).toBe(16); // 1024 blocks / 64 per chunk
  });

  it('a block slow on every read is remapped; one slow for one read or for one test is timed again and left alone', () => {
    // The chunk's read and the block's two reads count: 2 slow reads end within the first test, 4 within the second.
    for (const [slowReads, remapped, waits] of [[Infinity, true, SLOW_CONFIRMATIONS - 1], [2, false, 0], [4, false, 1]] as const) {
      const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 }, { block: 20, slowReads });
      w.scanner.startPass();
      const waited = finishPass(w.scanner, w.clock);
      expect(waited).toEqual(Array<number>(waits).fill(CONFIRM_WAIT_MS));
      expect(w.dev.index.spareBlockOf(20) >= 0).toBe(remapped);
      expect(w.scanner.state.lastSummary?.remappedSlow).toBe(remapped ? 1 : 0);
      expect(w.scanner.state.lastSummary?.slowBlocks).toBe(remapped ? 1 : 0);
    }
  });

  /** Steps the pass to its end, moving the clock over every wait the scanner asks for; returns the waits. */
  function finishPass(scanner: Scanner, clock: FakeClock): number[] {
    const waited: number[] = [];
    while (scanner.inPass) {
      const wait = scanner.waitMs();
      if (wait > 0) waited.push(wait);
      clock.t += wait;
      scanner.step();
    }
    return waited;
  }

  /** A ScanTarget whose reads take `msOf(block)` (no real waiting); it records remaps. */
  function timedTarget(virtualBlocks: number, msOf: (block: number) => number) {
    const remapped = new Set<number>();
    const reads: number[] = [];
    const target: ScanTarget = {
      blockSize: 4096,
      virtualBlocks,
      isRemapped: (b) => remapped.has(b),
      timedMainRead: (buf, off) => {
        let ms = 0;
        for (let b = off / 4096; b < (off + buf.length) / 4096; b++) {
          reads.push(b);
          ms = Math.max(ms, msOf(b));
        }
        return ms;
      },
      scanFoundUnreadable: () => true,
      remapBlock: (b) => {
        const already = remapped.has(b);
        remapped.add(b);
        return { already };
      },
    };
    return { target, remapped, reads };
  }

  it('a stall of the whole device is waited out, not taken for slow blocks; a block slow while the rest is fast is still moved', () => {
    const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 });
    let stalled = true;
    const t = timedTarget(256, (b) => (stalled || b === 200 ? 60 : 0));
    const lines: string[] = [];
    const scanner = new Scanner(t.target, w.store, w.pair.id, () => w.cfg, w.clock.now, (l) => lines.push(l));
    scanner.startPass();
    expect(scanner.step()).toBeGreaterThan(0);
    // Block 0 was slow twice and so was its control (block 128): nothing judged, the cursor stays.
    expect(t.reads.slice(16)).toEqual([0, 0, 128]);
    expect(scanner.state.cursorBlock).toBe(0);
    expect(scanner.waitMs()).toBe(STALL_BACKOFF_MS);
    expect(scanner.stalls).toBe(1);
    expect(lines).toEqual([`scan: the whole device is slow at block 0 (a stall?); timing it again in ${STALL_BACKOFF_MS} ms`]);
    // It does not read again before the wait is over.
    const before = t.reads.length;
    expect(scanner.step()).toBe(0);
    expect(t.reads.length).toBe(before);
    stalled = false;
    w.clock.t += STALL_BACKOFF_MS;
    const waited = finishPass(scanner, w.clock);
    // Only block 200, slow while its control (block 199, the last fast one) was fast, in SLOW_CONFIRMATIONS tests
    // a wait apart, was moved.
    expect(waited).toEqual(Array<number>(SLOW_CONFIRMATIONS - 1).fill(CONFIRM_WAIT_MS));
    expect(t.reads.filter((b) => b === 199).length).toBe(2 + SLOW_CONFIRMATIONS); // in its chunk, on its own, then a control per test
    expect([...t.remapped]).toEqual([200]);
    expect(scanner.state.lastSummary).toMatchObject({ blocksScanned: 256, slowBlocks: 1, remappedSlow: 1 });
    expect(scanner.state.lastSummary?.latencyClasses).toEqual({ ok: 255, warn: 0, slow: 1, critical: 0 });
  });

  it('a block is judged only by SLOW_CONFIRMATIONS tests a wait apart: warn-level ones are recorded, a burst that passes is forgotten', () => {
    for (const [msOf, tests, recorded] of [
      [(b: number) => (b === 100 ? 30 : 0), SLOW_CONFIRMATIONS, [{ block: 100, latencyMs: 30 }]],
      // Block 100 is slow in the first two tests (its chunk and its own reads), fast in the third: another tenant's burst.
      [(b: number, n: number) => (b === 100 && n < 6 ? 60 : 0), 3, []],
    ] as const) {
      const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 });
      let reads100 = 0;
      const t = timedTarget(256, (b) => msOf(b, b === 100 ? reads100++ : 0));
      const scanner = new Scanner(t.target, w.store, w.pair.id, () => w.cfg, w.clock.now);
      scanner.startPass();
      const waited = finishPass(scanner, w.clock);
      expect(waited).toEqual(Array<number>(tests - 1).fill(CONFIRM_WAIT_MS));
      expect(t.remapped.size).toBe(0);
      expect(slowBlocks(w.store, w.pair.id)).toEqual(recorded);
      expect(scanner.state.lastSummary?.latencyClasses).toEqual({ ok: 256 - recorded.length, warn: recorded.length, slow: 0, critical: 0 });
    }
  });

  it('a block recorded as slow that reads fast in a later pass (its whole chunk fast) is no longer counted slow', () => {
    const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 });
    let slow = true;
    const t = timedTarget(256, (b) => (slow && b === 100 ? 30 : 0));
    const scanner = new Scanner(t.target, w.store, w.pair.id, () => w.cfg, w.clock.now);
    scanner.startPass();
    finishPass(scanner, w.clock);
    expect(slowBlocks(w.store, w.pair.id)).toEqual([{ block: 100, latencyMs: 30 }]);
    slow = false; // the disk got over it (or the fault was cleared)
    scanner.startPass();
    finishPass(scanner, w.clock);
    expect(slowBlocks(w.store, w.pair.id)).toEqual([]);
    expect(scanner.state.lastSummary?.latencyClasses).toEqual({ ok: 256, warn: 0, slow: 0, critical: 0 });
  });

  it('stall and stayed-slow lines come at most once per STALL_LOG_EVERY_MS each, and the next counts those left out', () => {
    const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 });
    const t = timedTarget(256, () => 60);
    const lines: string[] = [];
    const scanner = new Scanner(t.target, w.store, w.pair.id, () => w.cfg, w.clock.now, (l) => lines.push(l));
    scanner.startPass();
    const stallLines = () => lines.filter((l) => l.includes('is slow at'));
    const start = w.clock.t;
    while (stallLines().length < 2) {
      scanner.step();
      w.clock.t += scanner.waitMs();
    }
    // Blocks 0..k-1 waited and were recorded; block k stalled first after STALL_LOG_EVERY_MS.
    const k = slowBlocks(w.store, w.pair.id).length;
    expect(k).toBeGreaterThan(10);
    expect(w.clock.t - start).toBeGreaterThanOrEqual(STALL_LOG_EVERY_MS);
    expect(t.remapped.size).toBe(0);
    expect(stallLines()).toEqual([
      `scan: the whole device is slow at block 0 (a stall?); timing it again in ${STALL_BACKOFF_MS} ms`,
      `scan: the whole device is slow at block ${k} (a stall?); timing it again in ${STALL_BACKOFF_MS} ms; ${k - 1} more stalled block(s) since the last such line`,
    ]);
    const stayed = lines.filter((l) => l.includes('stayed slow'));
    expect(stayed[0]).toBe('scan: the whole device stayed slow at block 0; recorded as slow (60 ms), not moved');
    expect(stayed.length).toBeLessThanOrEqual(2);
    expect(lines).toHaveLength(2 + stayed.length);
  });

  it('a device slow everywhere is recorded, never moved, after MAX_STALL_DEFERRALS waits per block, and the scheduler honours the wait', () => {
    const w = world({ scanChunkKiB: 64, latencyWarnMs: 20, latencyRemapMs: 50, latencyCriticalMs: 100 });
    const t = timedTarget(256, () => 60);
    const lines: string[] = [];
    const scanner = new Scanner(t.target, w.store, w.pair.id, () => w.cfg, w.clock.now, (l) => lines.push(l));
    const sched = new ScanScheduler(scanner, () => 0, () => w.cfg, () => 100, w.pair.createdAt, { clock: w.clock });
    w.clock.t += 1_000_000;
    sched.requestPass(false);
    for (let wait = 0; wait < MAX_STALL_DEFERRALS; wait++) {
      expect(sched.tick()).toBe(STALL_BACKOFF_MS);
      expect(t.remapped.size).toBe(0);
      expect(sched.tick()).toBe(STALL_BACKOFF_MS); // too early: no step
      w.clock.t += STALL_BACKOFF_MS;
    }
    // The fourth time block 0 is recorded as slow by its timings, not moved, and block 1 starts its own waits.
    expect(sched.tick()).toBe(STALL_BACKOFF_MS);
    expect(t.remapped.size).toBe(0);
    expect(slowBlocks(w.store, w.pair.id)).toEqual([{ block: 0, latencyMs: 60 }]);
    expect(lines).toContain('scan: the whole device stayed slow at block 0; recorded as slow (60 ms), not moved');
    expect(scanner.state.cursorBlock).toBe(1);
    expect(scanner.stalls).toBe(MAX_STALL_DEFERRALS + 1);
  });

  it('persists progress so a new scanner resumes where the old one stopped', () => {
    const w = world({ scanChunkKiB: 64 });
    w.scanner.startPass();
    for (let i = 0; i < 5; i++) w.scanner.step();
    w.scanner.persist();
    const again = new Scanner(w.dev, w.store, w.pair.id, () => w.cfg, w.clock.now);
    expect(again.inPass).toBe(true);
    expect(again.state.cursorBlock).toBe(5 * 16);
    expect(again.state.currentSummary?.blocksScanned).toBe(5 * 16);
  });

  it('the scanner needs only a ScanTarget: it skips remapped blocks, reports unreadable ones, and a bug in the target propagates', () => {
    const w = world({ scanChunkKiB: 64 });
    const reads: number[] = [];
    const found: number[] = [];
    let bug = false;
    const target: ScanTarget = {
      blockSize: 4096,
      virtualBlocks: 64,
      isRemapped: (b) => b === 5,
      timedMainRead: (buf, off) => {
        if (bug) throw new TypeError('bug in the target');
        for (let b = off / 4096; b < (off + buf.length) / 4096; b++) reads.push(b);
        if (off <= 9 * 4096 && 9 * 4096 < off + buf.length) throw ioError('read', 'main sector 72');
        return 0;
      },
      scanFoundUnreadable: (b) => (found.push(b), true),
      remapBlock: () => ({ already: false }),
    };
    const scanner = new Scanner(target, w.store, w.pair.id, () => w.cfg, w.clock.now);
    scanner.startPass();
    while (scanner.inPass) scanner.step();
    expect(reads).not.toContain(5);
    expect(found).toEqual([9]);
    expect(scanner.state.lastSummary?.unreadableBlocks).toBe(1);
    scanner.startPass();
    bug = true;
    expect(() => scanner.step()).toThrow('bug in the target');
  });

  it('main not there (ENODEV): nothing is judged unreadable, the cursor waits on the block, and the scan goes on once main is back; it gives up after GONE_WAITS_MAX waits', () => {
    const w = world({ scanChunkKiB: 64 });
    const found: number[] = [];
    const logs: string[] = [];
    let gone = false;
    const target: ScanTarget = {
      blockSize: 4096,
      virtualBlocks: 64,
      isRemapped: () => false,
      timedMainRead: (buf, off) => {
        if (gone && off + buf.length > 20 * 4096) throw new RemapfsError('read', 'main', Object.assign(new Error('ENODEV: no such device, read'), { code: 'ENODEV' }));
        return 0;
      },
      scanFoundUnreadable: (b) => (found.push(b), true),
      remapBlock: () => ({ already: false }),
    };
    const scanner = new Scanner(target, w.store, w.pair.id, () => w.cfg, w.clock.now, (l) => logs.push(l));
    scanner.startPass();
    scanner.step(); // blocks 0-15
    gone = true;
    for (let i = 0; i < 5; i++) {
      w.clock.t += scanner.waitMs();
      scanner.step();
    }
    expect(scanner.state.cursorBlock).toBe(20);
    expect(scanner.waitMs()).toBe(STALL_BACKOFF_MS);
    expect(found).toEqual([]);
    expect(logs[0]).toMatch(/^scan: main is not there at block 20 \(ENODEV\); trying again in 1000 ms$/);
    gone = false;
    while (scanner.inPass) {
      w.clock.t += scanner.waitMs();
      scanner.step();
    }
    expect(found).toEqual([]);
    expect(scanner.state.lastSummary?.unreadableBlocks).toBe(0);
    // A main that stays away: the scan stops with the error after GONE_WAITS_MAX waits.
    scanner.startPass(true);
    gone = true;
    let thrown: unknown;
    for (let i = 0; i < GONE_WAITS_MAX + 5 && !thrown; i++) {
      w.clock.t += scanner.waitMs();
      try {
        scanner.step();
      } catch (err) {
        thrown = err;
      }
    }
    expect(String(thrown)).toMatch(/ENODEV/);
    expect(found).toEqual([]);
    // Waits in a row only: an outage of GONE_WAITS_MAX - 1 waits, main back for a run, then another short one.
    const again = new Scanner(target, w.store, w.pair.id, () => w.cfg, w.clock.now, () => undefined);
    again.startPass(true);
    const stepThrough = (steps: number) => {
      for (let i = 0; i < steps; i++) {
        w.clock.t += again.waitMs();
        again.step();
      }
    };
    stepThrough(2); // blocks 0-19 read; waits on 20
    stepThrough(GONE_WAITS_MAX - 2);
    gone = false;
    stepThrough(1); // 20-35 read as a run
    gone = true;
    expect(() => stepThrough(3)).not.toThrow();
    expect(found).toEqual([]);
  });

  it('the report reflects pending blocks and the scan', () => {
    const w = world({});
    w.store.remaps.put(w.pair.id, { mainBlock: 3, spareBlock: -1, reason: 'read-error', state: 'pending', lostSectors: 1, createdAt: 1 });
    const r = healthReport(w.store, w.pair, w.clock.t);
    expect(r.pendingBlocks).toBe(1);
    expect(r.score).toBe(90);
    expect(r.scan.passesCompleted).toBe(0);
  });
});

describe('map', () => {
  const input: MapInput = { virtualBlocks: 100, remapped: new Set([10, 11, 55]), pending: new Set([11, 70]), slow: new Set([30]), scannedThrough: 79 };

  it('groups blocks into cells by their worst state', () => {
    const c = cells(input, 10);
    expect(c.map((x) => x.state)).toEqual(['ok', 'pending', 'ok', 'slow', 'ok', 'remapped', 'ok', 'pending', 'unscanned', 'unscanned']);
    expect(c[1]).toEqual({ firstBlock: 10, endBlock: 20, state: 'pending' });
  });

  it('draws a text bar', () => {
    expect(renderBar(input, 10)).toBe('.P.s.R.P  ');
  });

  it('draws well-formed SVG whose cells and colours match the states', () => {
    const svg = renderSvg('test', input, { maxCells: 100, columns: 10 });
    expect(wellFormed(svg)).toBe(true);
    const rects = [...svg.matchAll(/<rect [^>]*fill="(#[0-9a-f]{6})" data-state="(\w+)" data-first-block="(\d+)"/g)];
    expect(rects).toHaveLength(100);
    for (const [, colour, state, first] of rects) {
      const b = Number(first);
      const want = input.pending.has(b) ? 'pending' : input.remapped.has(b) ? 'remapped' : input.slow.has(b) ? 'slow' : b > 79 ? 'unscanned' : 'ok';
      expect(state).toBe(want);
      expect(colour).toBe(STATE_COLOURS[want]);
    }
    for (const s of Object.keys(STATE_COLOURS)) expect(svg).toContain(`data-legend="${s}"`);
    expect(svg).toContain('pending (2)');
    expect(svg).toContain('unscanned (20)');
  });

  it('spaces the legend by its labels, so long counts do not overlap the next swatch', () => {
    const big: MapInput = { virtualBlocks: 268435456, remapped: new Set([5]), pending: new Set([6]), slow: new Set([7]), scannedThrough: 134217727 };
    const svg = renderSvg('big', big, { maxCells: 64 });
    expect(wellFormed(svg)).toBe(true);
    const entries = [...svg.matchAll(/<rect x="(\d+)" [^>]*data-legend="\w+"\/>\n<text x="(\d+)" [^>]*>([^<]*)<\/text>/g)].map((m) => ({ x: Number(m[1]), textX: Number(m[2]), label: m[3] as string }));
    expect(entries.map((e) => e.label)).toEqual(['pending (1)', 'slow (1)', 'remapped (1)', 'unscanned (134217728)', 'ok (134217725)']);
    for (let i = 1; i < entries.length; i++) {
      const prev = entries[i - 1] as { textX: number; label: string };
      expect((entries[i] as { x: number }).x).toBeGreaterThanOrEqual(prev.textX + prev.label.length * LEGEND_CHAR_PX);
    }
    const last = entries[entries.length - 1] as { textX: number; label: string };
    expect(Number(/<svg [^>]*width="(\d+)"/.exec(svg)?.[1])).toBeGreaterThanOrEqual(last.textX + last.label.length * LEGEND_CHAR_PX);
  });
});

describe('health report of a new pair', () => {
  it('gives the first scan as due scanIntervalHours after init, before any daemon has scheduled it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-due-'));
    try {
      const store = Store.open(path.join(dir, 'p.db'), { create: true });
      const createdAt = Date.UTC(2026, 0, 1);
      const pair = store.pairs.insert({ name: 'n', uuid: '2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/x', sparePath: '/y', blockSize: 4096, mainBytes: 1048576, spareBytes: 1048576, createdAt, metaSeq: 1 });
      expect(healthReport(store, pair, createdAt + 1000).scan.nextDueAt).toBe(new Date(createdAt + 24 * 3600000).toISOString());
      store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Prometheus exposition', () => {
  it('has HELP and TYPE before samples, valid names and labels', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-prom-'));
    try {
      const store = Store.open(path.join(dir, 'p.db'), { create: true });
      const pair = store.pairs.insert({ name: 'we"ird', uuid: '2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', mainPath: '/x', sparePath: '/y', blockSize: 4096, mainBytes: 1048576, spareBytes: 1048576, createdAt: 1, metaSeq: 1 });
      const text = renderPrometheus([{ report: healthReport(store, pair), problems: { dataLost: false, newRemaps: true } }]);
      const parsed = parseExposition(text);
      expect(parsed.samples.get('remapfs_health_score')).toEqual([{ labels: { pair: 'we"ird', uuid: pair.uuid }, value: 100 }]);
      expect(parsed.types.get('remapfs_remap_events_total')).toBe('counter');
      expect(parsed.samples.get('remapfs_health_problem')?.find((s) => s.labels.problem === 'newRemaps')?.value).toBe(1);
      // Every metric has the labels pair and uuid (docs/health.md).
      for (const [name, samples] of parsed.samples) for (const s of samples) expect([name, s.labels.pair, s.labels.uuid]).toEqual([name, 'we"ird', pair.uuid]);
      expect(parsed.samples.has('remapfs_days_to_spare_exhaustion')).toBe(false); // no remaps: no prediction
      store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
