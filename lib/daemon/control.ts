/**
 * Control channel between the CLI and a running daemon: one JSON object per
 * line over a Unix socket, one request and one answer per connection. The
 * daemon handles requests on its event loop, between FUSE requests, so a
 * remap it performs is consistent with in-flight I/O.
 *
 * Every request is checked before anything runs (checkControlRequest): pair
 * requests against lib/pair/operations.ts, the mount's own (shutdown, and
 * fault for the simulator) here. A malformed one is answered with one error
 * and changes nothing. socketTransport is PairOps' transport over this socket.
 */
import * as net from 'net';
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import * as os from 'os';
import { RemapfsError } from '../errors.js';
import { checkPairRequest, isPairOp, operation, type OpResult, type PairRequest, toRequest, type Transport } from '../pair/operations.js';
import { badRequest, booleanField, countsField, isObject, oneOfField } from '../pair/request-fields.js';

export const FAULT_ACTIONS = ['add', 'remove', 'clear', 'list'] as const;
const FAULT_KINDS = ['bad', 'slow'] as const;

/** Requests to the mount itself rather than to one of its pairs. */
export type MountRequest =
  | { op: 'fault'; action: (typeof FAULT_ACTIONS)[number]; kind: (typeof FAULT_KINDS)[number]; sectors: number[]; delayMs?: number }
  | { op: 'shutdown'; force?: boolean };

export type ControlRequest = PairRequest | MountRequest;

const MOUNT_FIELDS: Record<MountRequest['op'], readonly string[]> = { fault: ['action', 'kind', 'sectors', 'delayMs'], shutdown: ['force'] };

/** Checks a request off the socket (untrusted JSON): every field, and no unknown ones. */
export function checkControlRequest(raw: unknown): ControlRequest {
  if (isObject(raw) && isPairOp(raw.op)) {
    const r = checkPairRequest(raw);
    return toRequest(r.op, r.pair, r.args);
  }
  if (!isObject(raw)) throw badRequest('', 'a request must be a JSON object');
  const op = raw.op;
  if (op !== 'fault' && op !== 'shutdown') throw badRequest('', typeof op === 'string' ? `unknown operation "${op}"` : '"op" must be a string');
  for (const k of Object.keys(raw)) if (k !== 'op' && !MOUNT_FIELDS[op].includes(k)) throw badRequest(op, `unknown field "${k}"`);
  if (op === 'shutdown') return { op, force: booleanField(op, raw, 'force', false) };
  const delay = raw.delayMs;
  if (delay !== undefined && !(typeof delay === 'number' && Number.isSafeInteger(delay) && delay >= 0)) throw badRequest(op, '"delayMs" must be a non-negative integer');
  return {
    op,
    action: oneOfField(op, raw, 'action', FAULT_ACTIONS),
    kind: oneOfField(op, raw, 'kind', FAULT_KINDS),
    sectors: countsField(op, raw, 'sectors'),
    ...(delay !== undefined ? { delayMs: delay } : {}),
  };
}

export interface ControlError {
  op: string;
  object: string;
  message: string;
  hint?: string;
}

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: ControlError };

export function socketPathFor(mountpoint: string): string {
  const dir = fs.existsSync('/run') ? '/run/remapfs' : path.join(os.tmpdir(), 'remapfs');
  const hash = crypto.createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  return path.join(dir, `${hash}.sock`);
}

/** The longest request line the daemon reads (an import-bad of a long list fits); a longer one is refused. */
export const MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/**
 * The sockets' directory is made 0700; one that is there already must be a real directory of this user that
 * nobody else may write, or another user could plant or swap a daemon's socket (the directory is shared).
 */
function checkSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  const uid = process.getuid?.() ?? st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    const what = !st.isDirectory() ? 'is not a directory' : st.uid !== uid ? `belongs to uid ${st.uid}` : `may be written by others (mode ${(st.mode & 0o777).toString(8)})`;
    throw new RemapfsError('serve control socket in', dir, what, `remove it (remapfs makes it 0700), or fix its owner and mode`);
  }
}

export function serve(socketPath: string, handle: (req: ControlRequest) => unknown): Promise<net.Server> {
  try {
    checkSocketDir(path.dirname(socketPath));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  try {
    fs.unlinkSync(socketPath);
  } catch {
    // none left over
  }
  // One request per connection: its line is gathered as Buffers (each chunk searched once), at most
  // MAX_REQUEST_BYTES of it; what comes after its newline (or past the bound) is read and dropped.
  const server = net.createServer((conn) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let taken = false;
    const answer = async (line: string | undefined): Promise<void> => {
      let reply: ControlReply;
      let req: ControlRequest | undefined;
      try {
        if (line === undefined) throw badRequest('', `the request is longer than ${MAX_REQUEST_BYTES} bytes`);
        let raw: unknown;
        try {
          raw = JSON.parse(line);
        } catch {
          throw badRequest('', 'not one JSON object');
        }
        req = checkControlRequest(raw);
        reply = { ok: true, result: await handle(req) };
      } catch (err) {
        reply = { ok: false, error: toControlError(err, req) };
      }
      conn.end(JSON.stringify(reply) + '\n');
    };
    conn.on('data', (chunk: Buffer) => {
      if (taken) return;
      const nl = chunk.indexOf(10);
      const part = nl < 0 ? chunk : chunk.subarray(0, nl);
      bytes += part.length;
      if (bytes > MAX_REQUEST_BYTES) {
        taken = true;
        chunks.length = 0;
        void answer(undefined);
        return;
      }
      chunks.push(part);
      if (nl < 0) return;
      taken = true;
      void answer(Buffer.concat(chunks, bytes).toString('utf8'));
    });
    conn.on('error', () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      fs.chmodSync(socketPath, 0o600);
      resolve(server);
    });
  });
}

export function request(socketPath: string, req: ControlRequest, timeoutMs = 60000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new RemapfsError('contact daemon', socketPath, 'no answer in time'));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (chunk: string) => (data += chunk));
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(new RemapfsError('contact daemon', socketPath, err, 'is "remapfs mount" still running?'));
    });
    conn.on('end', () => {
      clearTimeout(timer);
      let reply: ControlReply;
      try {
        reply = JSON.parse(data) as ControlReply;
      } catch {
        return reject(new RemapfsError('contact daemon', socketPath, 'garbled answer'));
      }
      if (reply.ok) return resolve(reply.result);
      const e = reply.error;
      // An answer without op or object (another remapfs version) is still one well-formed line.
      reject(new RemapfsError(e.op || req.op, e.object || ('pair' in req ? req.pair : 'daemon'), e.message, e.hint));
    });
  });
}

/** PairOps over the socket of the daemon serving `pair`. */
export function socketTransport(socketPath: string, pair: string): Transport {
  return async (op, args) => (await request(socketPath, toRequest(op, pair, args), operation(op).timeoutMs)) as OpResult<typeof op>;
}

/**
 * A failure as the CLI prints it: `<operation> <object>: <cause> (<hint>)`.
 * One that is not a RemapfsError is named after the request (its operation
 * and pair), never "daemon request".
 */
export function toControlError(err: unknown, req: ControlRequest | undefined): ControlError {
  if (err instanceof RemapfsError) {
    return { op: err.op, object: err.object, message: err.causeText, ...(err.hint ? { hint: err.hint } : {}) };
  }
  const message = err instanceof Error ? err.message : String(err);
  if (!req || typeof req !== 'object' || typeof req.op !== 'string') return { op: 'read', object: 'control request', message, hint: 'the CLI and the daemon must be the same remapfs version' };
  const pair = 'pair' in req && typeof req.pair === 'string' ? req.pair : undefined;
  return { op: req.op, object: pair ?? 'daemon', message, hint: 'see the daemon log for details' };
}
