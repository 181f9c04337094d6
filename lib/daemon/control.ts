/**
 * Control channel between the CLI and a running daemon: one JSON object per
 * line over a Unix socket, one request and one answer per connection. The
 * daemon handles requests on its event loop, between FUSE requests, so a
 * remap it performs is consistent with in-flight I/O.
 */
import * as net from 'net';
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import { RemapfsError } from '../errors';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'remap'; pair: string; sectors: number[] }
  | { op: 'verify'; pair: string; repair: boolean }
  | { op: 'config'; pair: string; changes: Record<string, unknown> }
  | { op: 'scan'; pair: string; restart: boolean }
  | { op: 'scan-status'; pair: string }
  | { op: 'health'; pair: string }
  | { op: 'track'; pair: string; action: 'start' | 'take' | 'stop' }
  | { op: 'import-bad'; pair: string; sectors: number[] }
  | { op: 'fault'; action: 'add' | 'remove' | 'clear' | 'list'; kind: 'bad' | 'slow'; sectors: number[]; delayMs?: number }
  | { op: 'shutdown'; force?: boolean };

export interface ControlError {
  op: string;
  object: string;
  message: string;
  hint?: string;
}

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: ControlError };

export function socketPathFor(mountpoint: string): string {
  const dir = fs.existsSync('/run') ? '/run/remapfs' : path.join(require('os').tmpdir(), 'remapfs');
  const hash = crypto.createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  return path.join(dir, `${hash}.sock`);
}

export function serve(socketPath: string, handle: (req: ControlRequest) => Promise<unknown> | unknown): Promise<net.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  try {
    fs.unlinkSync(socketPath);
  } catch {
    // none left over
  }
  const server = net.createServer((conn) => {
    let data = '';
    conn.setEncoding('utf8');
    conn.on('data', async (chunk: string) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      let reply: ControlReply;
      let req: ControlRequest | undefined;
      try {
        req = JSON.parse(data.slice(0, nl)) as ControlRequest;
        reply = { ok: true, result: await handle(req) };
      } catch (err) {
        reply = { ok: false, error: toControlError(err, req) };
      }
      conn.end(JSON.stringify(reply) + '\n');
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
