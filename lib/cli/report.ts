import { RemapfsError, UsageError } from '../errors.js';
import { REBUILD_HINT } from '../store/db.js';

export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

export function reportError(err: unknown): number {
  if (process.env.REMAPFS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  if (err instanceof UsageError) {
    process.stderr.write(`remapfs: ${err.message} (see remapfs --help)\n`);
    return EXIT_USAGE;
  }
  if (err instanceof RemapfsError) {
    process.stderr.write(`remapfs: ${err.message}\n`);
    return EXIT_ERROR;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT')) {
    process.stderr.write(`remapfs: use database: database disk image is malformed (${REBUILD_HINT})\n`);
    return EXIT_ERROR;
  }
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`remapfs: internal error: ${msg} (set REMAPFS_DEBUG=1 for details)\n`);
  return EXIT_ERROR;
}
