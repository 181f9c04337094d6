/**
 * SQLite failures as one-line errors (docs/cli.md): what the damage is and
 * what to do about it. Pure: no database handle here.
 */
import { RemapfsError } from '../errors.js';

/** What to do about a damaged database. */
export const REBUILD_HINT = 'move it aside, then rebuild it from the spares with "remapfs import --main <main> --spare <spare>" for each pair, or restore a backup';
export const LOST_HINT = 'stop the daemon and start it again with the right database; the metadata slots on the spare hold every remap ("remapfs import" rebuilds a database from them)';

export function sqliteCause(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'SQLITE_NOTADB') return 'file is not a database (corrupt or overwritten)';
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_CORRUPT_INDEX') return 'database disk image is malformed';
  if (code === 'SQLITE_CANTOPEN') return 'cannot open the file';
  if (code === 'SQLITE_FULL') return 'the disk is full';
  return err instanceof Error ? err.message : String(err);
}

/**
 * A SQLite failure of the database itself (damage, a full disk) as a
 * one-line error with what to do; undefined for anything else.
 */
export function databaseError(op: string, dbPath: string, err: unknown): RemapfsError | undefined {
  if (err instanceof RemapfsError) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new RemapfsError(op, dbPath, sqliteCause(err), REBUILD_HINT);
  if (code.startsWith('SQLITE_FULL')) return new RemapfsError(op, dbPath, sqliteCause(err), 'free some space on its file system');
  if (code.startsWith('SQLITE_IOERR')) return new RemapfsError(op, dbPath, err instanceof Error ? err.message : code, 'the disk holding the database may be failing');
  return undefined;
}
