import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { CONFIG_KEYS, isConfigKey, type PairConfig, parseConfigValue } from '../../health/config.js';
import { opsFor, printJson, requirePair, withStore } from '../common.js';

interface Args {
  db?: string;
  name: string;
  settings: string[];
  json: boolean;
}

export const configCommand: CommandModule<object, Args> = {
  command: 'config <name> [settings..]',
  describe: `Show or change a pair's runtime settings (key or key=value); a running daemon applies them at once`,
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('settings', { type: 'string', array: true, default: [], describe: `key to show, or key=value to set; keys: ${CONFIG_KEYS.join(', ')}` })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const changes: Partial<Record<keyof PairConfig, unknown>> = {};
    const show: string[] = [];
    for (const item of argv.settings) {
      const eq = item.indexOf('=');
      const key = eq < 0 ? item : item.slice(0, eq);
      if (!isConfigKey(key)) throw new UsageError(`unknown setting "${key}"; settings: ${CONFIG_KEYS.join(', ')}`);
      if (eq < 0) {
        show.push(key);
        continue;
      }
      try {
        changes[key] = parseConfigValue(key, item.slice(eq + 1));
      } catch (err) {
        throw new UsageError(err instanceof Error ? err.message : String(err));
      }
    }
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      const config = await opsFor(store, pair).config({ changes: changes as Partial<PairConfig> });
      const shown = show.length ? Object.fromEntries(show.map((k) => [k, config[k as keyof PairConfig]])) : config;
      if (argv.json) return printJson({ version: 1, pair: pair.name, config: shown });
      for (const [k, v] of Object.entries(shown)) process.stdout.write(`${k}=${String(v)}\n`);
    });
  },
};
