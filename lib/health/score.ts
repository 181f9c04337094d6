/**
 * Health arithmetic (pure): the score, the adaptive scan interval, the remap
 * rate and the exhaustion prediction. docs/health.md states these formulas;
 * keep the two in step.
 */

export interface ScoreInputs {
  pendingBlocks: number;
  spareUsedBlocks: number;
  spareTotalBlocks: number;
  /** Smoothed remaps per day. */
  remapRatePerDay: number;
  accelerating: boolean;
  /** Unreadable blocks / blocks read, in the last full scan (0 without one). */
  readErrorRate: number;
  /** Blocks found slow (not yet remapped) in the last scan. */
  slowBlocks: number;
}

export interface ScoreResult {
  score: number;
  status: 'good' | 'fair' | 'poor' | 'failing';
  penalties: Record<'pending' | 'spare' | 'trend' | 'readErrors' | 'slow', number>;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export function healthScore(i: ScoreInputs): ScoreResult {
  const usedShare = i.spareTotalBlocks > 0 ? Math.min(1, i.spareUsedBlocks / i.spareTotalBlocks) : 1;
  const penalties = {
    pending: Math.min(40, 10 * i.pendingBlocks),
    spare: 30 * usedShare,
    trend: Math.min(15, 5 * Math.log2(1 + i.remapRatePerDay)) + (i.accelerating ? 5 : 0),
    readErrors: Math.min(10, 10000 * i.readErrorRate),
    slow: Math.min(10, i.slowBlocks),
  };
  const total = penalties.pending + penalties.spare + penalties.trend + penalties.readErrors + penalties.slow;
  const score = Math.max(0, Math.min(100, Math.round(100 - total)));
  const status = score >= 90 ? 'good' : score >= 70 ? 'fair' : score >= 40 ? 'poor' : 'failing';
  return {
    score,
    status,
    penalties: {
      pending: round1(penalties.pending),
      spare: round1(penalties.spare),
      trend: round1(penalties.trend),
      readErrors: round1(penalties.readErrors),
      slow: round1(penalties.slow),
    },
  };
}

/** Interval until the next full scan: the base interval divided by 1 + 7 * (100 - score) / 100 (1x to 8x faster). */
export function adaptiveIntervalMs(baseMs: number, score: number): number {
  const s = Math.max(0, Math.min(100, score));
  return baseMs / (1 + (7 * (100 - s)) / 100);
}

export const DAY_MS = 24 * 60 * 60 * 1000;

export interface Trend {
  /** Exponentially smoothed remaps per day (alpha 0.3, oldest day first, over `days` days). */
  ratePerDay: number;
  /** Mean of the last 7 days is more than 1.5 times the mean of the days before, with at least 4 remaps in the last 7. */
  accelerating: boolean;
  /** Days until the free spare blocks run out at `ratePerDay`; null when the rate is 0. */
  daysToExhaustion: number | null;
  exhaustionDate: string | null;
}

/** Remap counts per day, oldest first, for the `days` days ending at `now`. */
export function dailyCounts(remapTimes: readonly number[], now: number, days: number): number[] {
  const counts = new Array<number>(days).fill(0);
  for (const t of remapTimes) {
    const age = Math.floor((now - t) / DAY_MS);
    if (age >= 0 && age < days) counts[days - 1 - age] = (counts[days - 1 - age] as number) + 1;
  }
  return counts;
}

export function trend(remapTimes: readonly number[], freeSpareBlocks: number, now: number, days = 30): Trend {
  return trendOfDays(dailyCounts(remapTimes, now, days), freeSpareBlocks, now);
}

/** The trend from remap counts per day (dailyCounts, or SQLite's count of the same), oldest first, the last day ending at `now`. */
export function trendOfDays(counts: readonly number[], freeSpareBlocks: number, now: number): Trend {
  let ewma = 0;
  for (const c of counts) ewma = 0.3 * c + 0.7 * ewma;
  const recent = counts.slice(-7);
  const earlier = counts.slice(0, -7);
  const recentSum = recent.reduce((a, b) => a + b, 0);
  const recentMean = recentSum / recent.length;
  const earlierMean = earlier.length ? earlier.reduce((a, b) => a + b, 0) / earlier.length : 0;
  const accelerating = recentSum >= 4 && recentMean > 1.5 * earlierMean;
  const ratePerDay = Math.round(ewma * 1000) / 1000;
  const daysToExhaustion = ratePerDay > 0 ? Math.round((freeSpareBlocks / ratePerDay) * 10) / 10 : null;
  const exhaustionDate = daysToExhaustion !== null ? new Date(now + daysToExhaustion * DAY_MS).toISOString().slice(0, 10) : null;
  return { ratePerDay, accelerating, daysToExhaustion, exhaustionDate };
}

/**
 * Token bucket for the scanner's byte rate. `take` returns how long to wait
 * (ms) before `bytes` may be read; 0 means now. The bucket holds one second
 * of rate at most, so a long idle time does not allow a burst.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private bytesPerSecond: number,
    private readonly now: () => number,
  ) {
    this.tokens = bytesPerSecond;
    this.last = now();
  }

  setRate(bytesPerSecond: number): void {
    this.refill();
    this.bytesPerSecond = bytesPerSecond;
    this.tokens = Math.min(this.tokens, bytesPerSecond);
  }

  /** Waiting time before `bytes` may be spent; when 0 the bytes are taken. */
  take(bytes: number): number {
    this.refill();
    if (this.tokens >= bytes || (this.tokens >= this.bytesPerSecond && bytes > this.bytesPerSecond)) {
      this.tokens -= bytes;
      return 0;
    }
    return Math.ceil(((bytes - this.tokens) / this.bytesPerSecond) * 1000);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
  }
}
