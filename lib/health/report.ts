/**
 * The health report of a pair, as shown by `remapfs health`, the live
 * `.remapfs/<name>/health` file and the Prometheus exporter. The JSON shape is
 * versioned (version 1) and documented in docs/health.md.
 */
import { spareLayout } from '../format/layout.js';
import type { PairRecord, Store } from '../store/db.js';
import type { PairConfig } from './config.js';
import { loadConfig, loadScanState, remapDays, remapEventCount, slowBlocks, type ScanSummary } from './history.js';
import { healthScore, type ScoreResult, trendOfDays, type Trend } from './score.js';

export interface HealthReport {
  version: 1;
  pair: string;
  uuid: string;
  time: string;
  score: number;
  status: ScoreResult['status'];
  penalties: ScoreResult['penalties'];
  remappedBlocks: number;
  pendingBlocks: number;
  lostSectors: number;
  retiredSpareBlocks: number;
  spareBlocksUsed: number;
  spareBlocksTotal: number;
  spareUsedPercent: number;
  spareExhausted: boolean;
  remapsByReason: Record<string, number>;
  remapEvents: number;
  trend: Trend;
  slowBlocks: number;
  readErrorRate: number;
  scan: {
    passesCompleted: number;
    inProgress: boolean;
    progressPercent: number | null;
    lastFinishedAt: string | null;
    nextDueAt: string | null;
    last: ScanSummary | null;
  };
  config: PairConfig;
}

const iso = (t: number | null) => (t ? new Date(t).toISOString() : null);

export function healthReport(store: Store, pair: PairRecord, now: number = Date.now()): HealthReport {
  const { counts, byReason, lostSectors } = store.remaps.summary(pair.id);
  const layout = spareLayout(pair.spareBytes, pair.blockSize);
  const used = counts.remapped + counts.label + counts.retired;
  const free = Math.max(0, layout.poolBlocks - used);
  const config = loadConfig(store, pair.id);
  const virtualBlocks = Math.floor(pair.mainBytes / pair.blockSize);
  const scan = loadScanState(store, pair.id, virtualBlocks, (why) => store.warn(`pair ${pair.name}: ignoring the stored scan progress: ${why}`));
  const last = scan.lastSummary;
  const readErrorRate = last && last.blocksScanned > 0 ? last.unreadableBlocks / last.blocksScanned : 0;
  const slow = slowBlocks(store, pair.id).length;
  const t = trendOfDays(remapDays(store, pair.id, now, 30), free, now);
  const s = healthScore({
    pendingBlocks: counts.pending,
    spareUsedBlocks: used,
    spareTotalBlocks: layout.poolBlocks,
    remapRatePerDay: t.ratePerDay,
    accelerating: t.accelerating,
    readErrorRate,
    slowBlocks: slow,
  });
  return {
    version: 1,
    pair: pair.name,
    uuid: pair.uuid,
    time: new Date(now).toISOString(),
    score: s.score,
    status: s.status,
    penalties: s.penalties,
    remappedBlocks: counts.remapped,
    pendingBlocks: counts.pending,
    lostSectors,
    retiredSpareBlocks: counts.retired,
    spareBlocksUsed: used,
    spareBlocksTotal: layout.poolBlocks,
    spareUsedPercent: layout.poolBlocks ? Math.round((10000 * used) / layout.poolBlocks) / 100 : 100,
    spareExhausted: used >= layout.poolBlocks,
    remapsByReason: byReason,
    remapEvents: remapEventCount(store, pair.id),
    trend: t,
    slowBlocks: slow,
    readErrorRate,
    scan: {
      passesCompleted: scan.passesCompleted,
      inProgress: scan.passStartedAt !== null,
      progressPercent: scan.passStartedAt !== null ? Math.round((1000 * scan.cursorBlock) / Math.max(1, virtualBlocks)) / 10 : null,
      lastFinishedAt: iso(scan.lastPassFinishedAt),
      // Not scheduled yet (no daemon has served the pair): its first pass is due scanIntervalHours after init (scheduler.ts).
      nextDueAt: iso(scan.nextDueAt || (scan.passStartedAt === null ? pair.createdAt + config.scanIntervalHours * 3_600_000 : null)),
      last,
    },
    config,
  };
}
