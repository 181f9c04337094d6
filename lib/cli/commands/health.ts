import * as fs from 'fs';
import type { CommandModule } from 'yargs';
import { identify } from '../../block/file-device.js';
import { RemapfsError } from '../../errors.js';
import { writeFileAtomic } from '../../fsutil/write-atomic.js';
import { loadReportState, saveReportState } from '../../health/history.js';
import { renderPrometheus } from '../../health/prometheus.js';
import { healthReport, type HealthReport } from '../../health/report.js';
import type { PairRecord, Store } from '../../store/db.js';
import { opsFor, printJson, requirePair, withStore } from '../common.js';
import { countOption } from '../options.js';
import { refuseProtectedOutput } from '../output-guard.js';

/** Exit status bits of `remapfs health` (docs/cli.md). */
export const HEALTH_BITS = {
  usage: 1,
  deviceMissing: 2,
  metadataInconsistent: 4,
  dataLost: 8,
  spareWarning: 16,
  spareExhausted: 32,
  newRemaps: 64,
  exhaustionPredicted: 128,
} as const;

type Problem = Exclude<keyof typeof HEALTH_BITS, 'usage'>;

interface Args {
  db?: string;
  name?: string;
  json: boolean;
  prometheus?: string;
  days?: number;
  quiet: boolean;
}

interface PairHealth {
  pair: string;
  pairId: number;
  report: HealthReport | null;
  problems: Record<Problem, boolean>;
  messages: string[];
  status: number;
}

async function checkPair(store: Store, pair: PairRecord, days: number | undefined, now: number): Promise<PairHealth> {
  const problems: Record<Problem, boolean> = { deviceMissing: false, metadataInconsistent: false, dataLost: false, spareWarning: false, spareExhausted: false, newRemaps: false, exhaustionPredicted: false };
  const messages: string[] = [];
  for (const [role, p, bytes] of [['main', pair.mainPath, pair.mainBytes], ['spare', pair.sparePath, pair.spareBytes]] as const) {
    try {
      const id = identify(p);
      if (id.sizeBytes < bytes) throw new Error(`has ${id.sizeBytes} bytes, expected ${bytes}`);
      fs.accessSync(id.realPath, fs.constants.R_OK | fs.constants.W_OK);
    } catch (err) {
      problems.deviceMissing = true;
      messages.push(`${role} ${p}: ${err instanceof RemapfsError ? err.causeText : err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (!problems.deviceMissing) {
    try {
      const v = await opsFor(store, pair).verify({ repair: false });
      if (!v.consistent) {
        problems.metadataInconsistent = true;
        const bad = v.slots.filter((s) => !s.valid || !s.current).map((s) => s.index);
        messages.push(`metadata inconsistent: ${bad.length ? `slots ${bad.join(', ')} invalid or stale` : ''}${v.database.agrees ? '' : `${bad.length ? '; ' : ''}database disagrees`} (run "remapfs repair ${pair.name}")`);
      }
    } catch (err) {
      problems.metadataInconsistent = true;
      messages.push(`metadata cannot be checked: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const report = healthReport(store, pair, now);
  if (report.pendingBlocks > 0 || report.lostSectors > 0) {
    problems.dataLost = true;
    messages.push(`data lost: ${report.pendingBlocks} pending blocks, ${report.lostSectors} sectors zero-filled when remapped`);
  }
  if (report.spareUsedPercent > report.config.spareWarnPercent) {
    problems.spareWarning = true;
    messages.push(`spare pool ${report.spareUsedPercent}% used (warning above ${report.config.spareWarnPercent}%)`);
  }
  if (report.spareExhausted) {
    problems.spareExhausted = true;
    messages.push('spare pool exhausted: new bad blocks cannot be remapped');
  }
  const last = loadReportState(store, pair.id);
  const newRemaps = report.remapEvents - (last?.remapEvents ?? 0);
  if (newRemaps > 0) {
    problems.newRemaps = true;
    messages.push(`${newRemaps} new remap(s) since ${last ? `the last report (${new Date(last.reportedAt).toISOString()})` : 'the pair was made'}`);
  }
  const horizon = days ?? report.config.predictDays;
  // A pool that has run out (bit 5) is not "predicted to" as well.
  if (!report.spareExhausted && report.trend.daysToExhaustion !== null && report.trend.daysToExhaustion <= horizon) {
    problems.exhaustionPredicted = true;
    messages.push(`spare pool predicted to run out in ${report.trend.daysToExhaustion} days (${report.trend.exhaustionDate})${report.trend.accelerating ? ', and the remap rate is accelerating' : ''}`);
  } else if (report.trend.accelerating) {
    messages.push('the remap rate is accelerating');
  }
  let status = 0;
  for (const [k, on] of Object.entries(problems)) if (on) status |= HEALTH_BITS[k as Problem];
  return { pair: pair.name, pairId: pair.id, report, problems, messages, status };
}

export const healthCommand: CommandModule<object, Args> = {
  command: 'health [name]',
  describe: 'Health report for cron: the exit status is a bitmask of problems (docs/cli.md); quiet bits mean nothing to report',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'one pair (default: all)' })
      .option('json', { type: 'boolean', default: false, describe: 'versioned JSON on stdout, nothing else' })
      .option('prometheus', { type: 'string', describe: 'also write a node_exporter textfile-collector file (atomically)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print nothing when there is nothing to report (exit status 0): for cron' })
      .option('days', countOption('days', 'prediction horizon for bit 7 (default: the predictDays setting, 30)')) as never,
  handler: async (argv) => {
    const days = argv.days;
    const now = Date.now();
    await withStore(argv, false, async (store) => {
      const pairs = argv.name ? [requirePair(store, argv.name)] : store.pairs.list();
      if (argv.prometheus) refuseProtectedOutput(store, 'write', argv.prometheus);
      const results: PairHealth[] = [];
      for (const p of pairs) results.push(await checkPair(store, p, days, now));
      const status = results.reduce((acc, r) => acc | r.status, 0);
      if (argv.prometheus) {
        // 0644: node_exporter usually runs as another user and must read it.
        writeFileAtomic(argv.prometheus, renderPrometheus(results.filter((r) => r.report).map((r) => ({ report: r.report as HealthReport, problems: r.problems }))), { mode: 0o644 });
      }
      // Only once the report is out: a run that failed to write it does not use up the new remaps (bit 6).
      for (const r of results) if (r.report) saveReportState(store, r.pairId, now, r.report.remapEvents);
      if (argv.quiet && status === 0) {
        // nothing to say
      } else if (argv.json) {
        printJson({ version: 1, time: new Date(now).toISOString(), exitStatus: status, pairs: results.map((r) => ({ ...r.report, problems: r.problems, messages: r.messages, exitStatus: r.status })) });
      } else {
        for (const r of results) {
          const rep = r.report;
          process.stdout.write(
            `${r.pair}: ${rep ? `score ${rep.score} (${rep.status}), ${rep.remappedBlocks} remapped, ${rep.pendingBlocks} pending, spare ${rep.spareUsedPercent}% used` : 'no report'}${r.messages.length ? '' : ', no problems'}\n`,
          );
          for (const m of r.messages) process.stdout.write(`  ${m}\n`);
        }
        if (results.length === 0) process.stdout.write('no pairs\n');
      }
      process.exitCode = status;
    });
  },
};
