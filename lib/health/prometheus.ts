/** Prometheus text exposition (node_exporter textfile collector) of health reports (pure rendering). */
import type { HealthReport } from './report.js';

interface Metric {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  value: (r: HealthReport) => number | null;
}

const METRICS: Metric[] = [
  { name: 'remapfs_health_score', help: 'Health score from 0 (failing) to 100 (good).', type: 'gauge', value: (r) => r.score },
  { name: 'remapfs_remapped_blocks', help: 'Blocks served from the spare (SMART reallocated sectors, in blocks).', type: 'gauge', value: (r) => r.remappedBlocks },
  { name: 'remapfs_pending_blocks', help: 'Blocks with unreadable sectors waiting for a write (SMART current pending).', type: 'gauge', value: (r) => r.pendingBlocks },
  { name: 'remapfs_lost_sectors', help: 'Sectors that were unreadable when their block was remapped and were zero-filled.', type: 'gauge', value: (r) => r.lostSectors },
  { name: 'remapfs_spare_blocks_used', help: 'Spare pool blocks in use or retired.', type: 'gauge', value: (r) => r.spareBlocksUsed },
  { name: 'remapfs_spare_blocks_total', help: 'Spare pool blocks in all.', type: 'gauge', value: (r) => r.spareBlocksTotal },
  { name: 'remapfs_remap_events_total', help: 'Remaps recorded in the history (SMART reallocation events).', type: 'counter', value: (r) => r.remapEvents },
  { name: 'remapfs_remap_rate_per_day', help: 'Smoothed remaps per day.', type: 'gauge', value: (r) => r.trend.ratePerDay },
  { name: 'remapfs_days_to_spare_exhaustion', help: 'Predicted days until the spare pool runs out (absent when no remaps).', type: 'gauge', value: (r) => r.trend.daysToExhaustion },
  { name: 'remapfs_slow_blocks', help: 'Blocks the last scans found slow and that are not remapped.', type: 'gauge', value: (r) => r.slowBlocks },
  { name: 'remapfs_scan_passes_total', help: 'Completed full surface scans.', type: 'counter', value: (r) => r.scan.passesCompleted },
  {
    name: 'remapfs_last_scan_timestamp_seconds',
    help: 'End of the last completed scan, Unix time.',
    type: 'gauge',
    value: (r) => (r.scan.lastFinishedAt ? Math.round(Date.parse(r.scan.lastFinishedAt) / 1000) : null),
  },
];

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Renders reports plus each pair's health exit bits (`remapfs_health_problem{pair,uuid,problem}`). */
export function renderPrometheus(entries: Array<{ report: HealthReport; problems: Record<string, boolean> }>): string {
  const lines: string[] = [];
  for (const m of METRICS) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const { report } of entries) {
      const v = m.value(report);
      if (v !== null) lines.push(`${m.name}{pair="${label(report.pair)}",uuid="${report.uuid}"} ${v}`);
    }
  }
  lines.push('# HELP remapfs_health_problem 1 when the problem behind an exit status bit of "remapfs health" is present.', '# TYPE remapfs_health_problem gauge');
  for (const { report, problems } of entries) {
    for (const [problem, on] of Object.entries(problems)) lines.push(`remapfs_health_problem{pair="${label(report.pair)}",uuid="${report.uuid}",problem="${problem}"} ${on ? 1 : 0}`);
  }
  return lines.join('\n') + '\n';
}
