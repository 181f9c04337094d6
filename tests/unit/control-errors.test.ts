/**
 * Errors relayed from the daemon keep the form `<operation> <object>: <cause>
 * (<hint>)`, also when the daemon's failure was not a RemapfsError.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Server } from 'net';
import { request, serve } from '../../lib/daemon/control.js';
import { RemapfsError } from '../../lib/errors.js';

describe('errors relayed from the daemon', () => {
  let dir: string;
  let server: Server | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-ctl-'));
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function failWith(err: unknown, req: Parameters<typeof request>[1]): Promise<RemapfsError> {
    const socket = path.join(dir, 'd.sock');
    server = await serve(socket, () => {
      throw err;
    });
    try {
      await request(socket, req, 10000);
    } catch (e) {
      expect(e).toBeInstanceOf(RemapfsError);
      return e as RemapfsError;
    }
    throw new Error('the request did not fail');
  }

  it('a plain error is named after the request and its pair, not "daemon request"', async () => {
    const e = await failWith(new Error('database disk image is malformed'), { op: 'remap', pair: 'disk0', sectors: [8] });
    expect(e.message).toBe('remap disk0: database disk image is malformed (see the daemon log for details)');
    expect(e.message).not.toMatch(/daemon request/);
  });

  it('a request without a pair names the daemon', async () => {
    const e = await failWith(new TypeError('x is undefined'), { op: 'shutdown' });
    expect(e.message).toBe('shutdown daemon: x is undefined (see the daemon log for details)');
  });

  it('a RemapfsError arrives exactly as it was thrown', async () => {
    const e = await failWith(new RemapfsError('config', 'disk0', 'scanIdleMs must be a number', 'see remapfs config --help'), { op: 'config', pair: 'disk0', changes: {} });
    expect(e.message).toBe('config disk0: scanIdleMs must be a number (see remapfs config --help)');
    expect([e.op, e.object, e.causeText, e.hint]).toEqual(['config', 'disk0', 'scanIdleMs must be a number', 'see remapfs config --help']);
  });
});
