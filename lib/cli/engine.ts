/**
 * The `--engine` option of the commands that mount (mount, simulate): which
 * FUSE engine serves the files. Not given, REMAPFS_ENGINE names it; neither
 * given, native (fuse-native where native cannot load). REMAPFS_ENGINE_IO and
 * REMAPFS_ENGINE_TRANSPORT are checked here too, so a bad value is a usage error before anything starts. Pure.
 */
import { ENGINE_ENV, ENGINES, type EngineName, fuseUringOf, parseEngine, ringWorkersOf } from '../fs/adapter.js';
import { UsageError } from '../errors.js';

export const engineOption = {
  type: 'string',
  choices: ENGINES as string[],
  describe: `FUSE engine: native (libfuse 3, the default where it loads) or fuse-native (libfuse 2); env ${ENGINE_ENV}`,
} as const;

/** The engine asked for by --engine, else by REMAPFS_ENGINE; undefined means the default. */
export function engineOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): EngineName | undefined {
  try {
    ringWorkersOf(env);
    fuseUringOf(env);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (flag !== undefined) return parseEngine(flag);
  const fromEnv = env[ENGINE_ENV];
  if (fromEnv === undefined || fromEnv === '') return undefined;
  const engine = parseEngine(fromEnv);
  if (!engine) throw new UsageError(`${ENGINE_ENV}=${fromEnv} is not an engine (use ${ENGINES.join(' or ')})`);
  return engine;
}
