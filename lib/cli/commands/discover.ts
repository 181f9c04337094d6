import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { discover, type DiscoveredPair } from '../../discovery/discover.js';
import { importPair } from '../../discovery/importer.js';
import { RemapfsError } from '../../errors.js';
import { Store } from '../../store/db.js';
import { CLI_LOCK_WAIT_MS, dbPath, liveDaemon, printJson } from '../common.js';
import { recordFileIds } from '../../discovery/file-ids.js';

interface Args {
  db?: string;
  accept: string[];
  dir: string[];
  json: boolean;
  import: boolean;
  'block-devices': boolean;
}

interface Action {
  uuid: string;
  name: string;
  action: 'imported' | 'paths-updated' | 'up-to-date' | 'skipped' | 'failed';
  detail: string;
}

/** Imports complete pairs and records new paths of moved ones. */
export function applyDiscovery(store: Store, pairs: DiscoveredPair[]): Action[] {
  const out: Action[] = [];
  const served = liveDaemon(store);
  for (const p of pairs) {
    if (p.status !== 'complete' || !p.main || !p.spare) {
      out.push({ uuid: p.uuid, name: p.name, action: 'skipped', detail: p.conflict ?? `${p.status}: both halves are needed` });
      continue;
    }
    try {
      if (p.known) {
        if (!p.known.moved) {
          out.push({ uuid: p.uuid, name: p.known.name, action: 'up-to-date', detail: 'already in the database at these paths' });
          continue;
        }
        if (served) throw new RemapfsError('update paths of', p.known.name, `the database is served by pid ${served.pid}`, 'unmount first; a daemon started with --watch follows moves itself');
        const rec = store.pairs.byUuid(p.uuid);
        if (!rec) throw new RemapfsError('update paths of', p.name, 'vanished from the database');
        store.pairs.updatePaths(rec.id, p.main.path, p.spare.path, p.spare.hardwareId);
        recordFileIds(store, { id: rec.id, mainPath: p.main.path, sparePath: p.spare.path });
        out.push({ uuid: p.uuid, name: rec.name, action: 'paths-updated', detail: `main ${p.main.path}, spare ${p.spare.path}` });
      } else {
        const r = importPair(store, p.main.path, p.spare.path, { lockWaitMs: CLI_LOCK_WAIT_MS });
        out.push({ uuid: p.uuid, name: r.pair.name, action: 'imported', detail: `${r.remappedBlocks} remapped blocks, sequence ${r.pair.metaSeq}` });
      }
    } catch (err) {
      out.push({ uuid: p.uuid, name: p.name, action: 'failed', detail: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

export const discoverCommand: CommandModule<object, Args> = {
  command: 'discover',
  describe: 'Find pairs by UUID on block devices and in directories; --import adds them to the database or records where they moved',
  builder: (y) =>
    y
      .option('dir', { type: 'string', array: true, default: [], describe: 'also look at the files in this directory (repeatable)' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output (schema in docs/cli.md)' })
      .option('import', { type: 'boolean', default: false, describe: 'import complete pairs and update the paths of moved ones' })
      .option('accept', { type: 'string', array: true, default: [], describe: 'resolve a conflict: use the spare or the main at this path (see "conflict" lines; repeatable)' })
      .option('block-devices', { type: 'boolean', default: true, describe: 'look at block devices too (--no-block-devices: only the --dir directories)' }),
  handler: (argv) => {
    for (const d of argv.dir) {
      if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new RemapfsError('discover', d, 'not a directory');
    }
    const file = dbPath(argv);
    const store = argv.import || fs.existsSync(file) ? Store.open(file, { create: argv.import }) : undefined;
    try {
      const accept = argv.accept.map((a) => {
        const p = path.resolve(a);
        if (!fs.existsSync(p)) throw new RemapfsError('discover', p, 'no such file or device', '--accept takes the path of a spare or main that discover lists');
        return fs.realpathSync(p);
      });
      const report = discover(argv.dir, store, { blockDevices: argv['block-devices'], ...(accept.length ? { accept } : {}) });
      for (const a of accept) {
        if (!report.pairs.some((p) => p.spare?.path === a || p.main?.path === a)) throw new RemapfsError('discover', a, 'is not a spare or main that discovery found', 'look at the paths "remapfs discover" lists');
      }
      const actions = argv.import && store ? applyDiscovery(store, report.pairs) : undefined;
      if (argv.json) return printJson({ ...report, ...(actions ? { actions } : {}) });
      if (report.pairs.length === 0) process.stdout.write(`no remapfs devices found (${report.scanned.blockDevices} block devices, ${report.scanned.files} files looked at)\n`);
      for (const p of report.pairs) {
        process.stdout.write(`${p.name} (uuid ${p.uuid}): ${p.status}${p.known ? p.known.moved ? ', moved since the database saw it' : ', in the database' : ', not in the database'}\n`);
        if (p.main) process.stdout.write(`  main  ${p.main.path}${p.main.hardwareId ? ` (${p.main.hardwareId})` : ''}\n`);
        if (p.spare) process.stdout.write(`  spare ${p.spare.path} (sequence ${p.spare.sequence}, ${p.spare.validSlots} of 5 slots valid)\n`);
        for (const l of p.losers) process.stdout.write(`  also  ${p.spare && l.role === 'spare' ? 'spare' : l.role} ${l.path}: not used, ${l.why}\n`);
        if (p.conflict) process.stdout.write(`  conflict: ${p.conflict}\n`);
      }
      for (const a of actions ?? []) process.stdout.write(`${a.action}: ${a.name}: ${a.detail}\n`);
      if (actions?.some((a) => a.action === 'failed')) process.exitCode = 1;
    } finally {
      store?.close();
    }
  },
};
