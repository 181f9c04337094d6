/**
 * Errors carry what was being done (op), to what (object), why (cause) and what
 * the user can do about it (hint). Only the CLI prints them and only the FUSE
 * adapter turns them into errno values.
 */

export class RemapfsError extends Error {
  readonly op: string;
  readonly object: string;
  readonly hint: string | undefined;
  /** The cause as one short line. */
  readonly causeText: string;
  /** errno-style code of the underlying failure, e.g. 'EIO', when there is one. */
  readonly code: string | undefined;
  override readonly cause: unknown;

  constructor(op: string, object: string, cause: unknown, hint?: string) {
    const causeText = describeCause(cause);
    super(`${op} ${object}: ${causeText}${hint ? ` (${hint})` : ''}`);
    this.name = 'RemapfsError';
    this.op = op;
    this.object = object;
    this.cause = cause;
    this.hint = hint;
    this.causeText = causeText;
    this.code = errnoCodeOf(cause);
  }
}

/** A mistake in how the command was called: exit status 2, no stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function errnoCodeOf(err: unknown): string | undefined {
  if (err instanceof RemapfsError) return err.code;
  if (err && typeof err === 'object' && 'code' in err) {
    const code = err.code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = errnoCodeOf(cause);
    const msg = cause.message;
    // Node's system errors read "EIO: i/o error, read"; keep them short.
    if (code && msg.startsWith(code)) return msg.split(',')[0] ?? msg;
    return msg;
  }
  return String(cause);
}

/**
 * Text read from outside (a file's line, a database value) as it may appear in
 * a one-line message: control and other non-printable characters escaped
 * (\n, \xNN, \uNNNN), and cut to `max` characters with "…".
 */
export function excerpt(text: string | Buffer, max = 40): string {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  let out = '';
  let n = 0;
  for (const ch of s) {
    if (n >= max) return `${out}…`;
    const c = ch.codePointAt(0) as number;
    if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (typeof text !== 'string' && c >= 0x80) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0xfffd || !/^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u.test(ch)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
    n++;
  }
  return out;
}
