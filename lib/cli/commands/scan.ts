import type { CommandModule } from 'yargs';
import { request } from '../../daemon/control';
import type { ScanStatus } from '../../daemon/daemon';
import { loadConfig, ScanSummary } from '../../health/history';
import { healthReport } from '../../health/report';
import { Scanner } from '../../health/scanner';
import { adaptiveIntervalMs } from '../../health/score';
import { onPair, printJson, requirePair, withStore } from '../common';
import { Progress } from '../progress';

interface Args {
  db?: string;
  name: string;
  restart: boolean;
  json: boolean;
}

export const scanCommand: CommandModule<object, Args> = {
  command: 'scan <name>',
  describe: 'Read the whole main device now: unreadable blocks become pending, slow ones are copied to the spare',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('restart', { type: 'boolean', default: false, describe: 'start from block 0 instead of resuming an interrupted pass' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' }) as never,
  handler: async (argv) => {
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      const summary = await onPair<ScanSummary | null>(store, pair, {
        open: { log: (line) => process.stderr.write(line + '\n') },
        daemon: async (daemon) => {
          const first = (await request(daemon.socket, { op: 'scan', pair: pair.name, restart: argv.restart })) as ScanStatus;
          const progress = new Progress(`scan ${pair.name}`, first.totalBlocks, pair.blockSize);
          let st = first;
          while (st.inProgress) {
            progress.update(st.cursorBlock);
            await new Promise((r) => setTimeout(r, 250));
            st = (await request(daemon.socket, { op: 'scan-status', pair: pair.name })) as ScanStatus;
          }
          progress.update(st.totalBlocks);
          progress.finish();
          return st.last as ScanSummary | null;
        },
        local: (rt) => {
          const config = loadConfig(store, pair.id);
          rt.device.readRetries = config.readRetries;
          const scanner = new Scanner(rt.device, store, pair.id, () => config, Date.now, (line) => process.stderr.write(`remapfs: ${pair.name}: ${line}\n`));
          if (scanner.inPass && !argv.restart) process.stderr.write(`remapfs: resuming the interrupted scan at block ${scanner.state.cursorBlock}\n`);
          scanner.startPass(argv.restart);
          const progress = new Progress(`scan ${pair.name}`, scanner.totalBlocks, pair.blockSize);
          while (scanner.inPass) {
            scanner.step();
            progress.update(scanner.inPass ? scanner.state.cursorBlock : scanner.totalBlocks);
          }
          progress.finish();
          scanner.setNextDue(Date.now() + adaptiveIntervalMs(config.scanIntervalHours * 3600000, healthReport(store, pair).score));
          rt.device.flush();
          return scanner.state.lastSummary;
        },
      });
      if (argv.json) return printJson({ version: 1, pair: pair.name, summary });
      if (!summary) return;
      const c = summary.latencyClasses;
      process.stdout.write(
        `scan of ${pair.name}: ${summary.blocksScanned} blocks in ${((summary.finishedAt - summary.startedAt) / 1000).toFixed(1)} s\n` +
          `  unreadable (now pending): ${summary.unreadableBlocks}\n` +
          `  slow: ${summary.slowBlocks} (copied to the spare: ${summary.remappedSlow}, critical: ${summary.criticalBlocks})\n` +
          `  latency classes: ok ${c.ok}, warn ${c.warn}, slow ${c.slow}, critical ${c.critical}\n`,
      );
    });
  },
};
