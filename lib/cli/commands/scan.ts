import type { CommandModule } from 'yargs';
import type { ScanSummary } from '../../health/history.js';
import { opsFor, printJson, requirePair, withStore } from '../common.js';
import { Progress } from '../progress.js';

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
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' }),
  handler: async (argv) => {
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      let progress: Progress | undefined;
      const show = (doneBlocks: number, totalBlocks: number) => (progress ??= new Progress(`scan ${pair.name}`, totalBlocks, pair.blockSize)).update(doneBlocks);
      // In-process the pass runs to its end inside scan() (reporting progress); a daemon's runs in the background.
      const ops = opsFor(store, pair, { log: (line) => process.stderr.write(line + '\n'), onScanProgress: show });
      let st = await ops.scan({ restart: argv.restart });
      while (st.inProgress) {
        show(st.cursorBlock, st.totalBlocks);
        await new Promise((r) => setTimeout(r, 250));
        st = await ops['scan-status']({});
      }
      show(st.totalBlocks, st.totalBlocks);
      progress?.finish();
      const summary = st.last as ScanSummary | null;
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
