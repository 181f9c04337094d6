/**
 * Which remapfs engines this checkout can mount with, and the `remapfs mount` arguments for each. The native
 * engine (`--engine native`, issue 15) may not exist yet, or may not load here: then its stacks are skipped
 * with one line saying why, and the bench goes on with fuse-native's.
 */
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';
import type { EngineName } from './config.js';

export type EngineChoice = { engine: EngineName; available: true; mountArgs: string[] } | { engine: EngineName; available: false; why: string };

/** The options `remapfs mount --help` lists, e.g. '--engine'. */
export function mountOptions(lab: Lab): Set<string> {
  const help = lab.cli(['mount', '--help']);
  return new Set((help.stdout + help.stderr).match(/--[a-z][a-z-]*/g) ?? []);
}

/** Mount arguments per engine, or why an engine cannot run, before anything is mounted. */
export function chooseEngine(engine: EngineName, options: ReadonlySet<string>): EngineChoice {
  if (options.has('--engine')) return { engine, available: true, mountArgs: ['--engine', engine] };
  // Before --engine existed, every mount used fuse-native.
  if (engine === 'fuse-native') return { engine, available: true, mountArgs: [] };
  return { engine, available: false, why: 'this remapfs has no `mount --engine` option (the native engine is not in this checkout)' };
}

/**
 * After a daemon asked for `engine` is up: why it is not serving with that engine (it fell back, or says
 * another engine in `status`), or undefined when it is (or when nothing says otherwise).
 */
export function servedEngineProblem(lab: Lab, db: string, pair: string, engine: EngineName, daemon: DaemonHandle): string | undefined {
  const status = JSON.parse(lab.ok(['--db', db, 'status', pair, '--json'])) as { engine?: string | { name?: string } };
  const served = typeof status.engine === 'string' ? status.engine : status.engine?.name;
  if (served === undefined || served === engine) return undefined;
  const said = daemon
    .output()
    .split('\n')
    .find((l) => /native|engine/i.test(l));
  return `the daemon serves with ${served}${said ? `: ${said.trim()}` : ''}`;
}

/** The first line of an error, for a one-line reason. */
export function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
