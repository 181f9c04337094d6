/**
 * PairOps (lib/pair/operations.ts): the in-process transport and the daemon's
 * control socket (the daemon's real dispatch and served host, without FUSE)
 * give the same results on two identical pairs on image files; a malformed
 * request off the socket is refused with one error and changes nothing.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Server, Socket } from 'net';
import { DeviceLock } from '../../lib/block/device-lock.js';
import { MAX_REQUEST_BYTES, request, serve, socketTransport } from '../../lib/daemon/control.js';
import { PairService } from '../../lib/daemon/pair-service.js';
import { dispatch, servedHost, unservedHost } from '../../lib/daemon/served-host.js';
import type { BlockDevice } from '../../lib/block/device.js';
import { RemapfsError } from '../../lib/errors.js';
import { createPair, planPair } from '../../lib/pair/create.js';
import { localTransport } from '../../lib/pair/local.js';
import { pairOps, type PairOps } from '../../lib/pair/operations.js';
import { openPair, type PairRuntime } from '../../lib/pair/pair.js';
import { MAX_REMAP_BLOCKS } from '../../lib/pair/ops.js';
import { type PairRecord, Store } from '../../lib/store/db.js';

const MAIN_BYTES = 4 * 1048576;
const SPARE_BYTES = 1048576;

describe('PairOps transports', () => {
  let dir: string;
  let store: Store;
  let server: Server | undefined;
  let served: PairRuntime | undefined;
  /** What the daemon serves as the pair's file (the tracking layer while an evacuation tracks writes). */
  let servedFile: BlockDevice | undefined;
  let svc: PairService | undefined;

  function makePair(name: string): PairRecord {
    const main = path.join(dir, `${name}-main.img`);
    const spare = path.join(dir, `${name}-spare.img`);
    fs.writeFileSync(main, Buffer.alloc(0));
    fs.truncateSync(main, MAIN_BYTES);
    fs.writeFileSync(spare, Buffer.alloc(0));
    fs.truncateSync(spare, SPARE_BYTES);
    const plan = planPair(name, main, spare, 4096, String);
    const lock = DeviceLock.acquire([plan.main.realPath, plan.spare.realPath], { op: 'test', object: name, waitMs: 0 });
    try {
      const { pair, labelError } = createPair(store, plan, false, lock);
      expect(labelError).toBeUndefined();
      return store.pairs.get(pair.name) as PairRecord;
    } finally {
      lock.release();
    }
  }

  /** Serves `rec` on a control socket the way the daemon does (control.serve + dispatch + servedHost). */
  async function serveOps(rec: PairRecord): Promise<{ socket: string; ops: PairOps }> {
    served = openPair(store, rec, { mode: 'buffered' });
    const service = new PairService(served, store, () => undefined);
    svc = service;
    const socket = path.join(dir, 'd.sock');
    const daemon = { store, mountpoint: path.join(dir, 'mnt'), log: () => undefined, openHandles: () => 0, serveDevice: (_name: string, device: BlockDevice) => void (servedFile = device) };
    server = await serve(socket, (req) =>
      dispatch(req, (name, unserved) => {
        if (name === service.name) return servedHost(service, daemon);
        const other = store.pairs.get(name);
        const notServed = () => new RemapfsError('find pair', name, 'not served');
        if (!other || !unserved) throw notServed();
        return unservedHost(store, other, notServed);
      }),
    );
    return { socket, ops: pairOps(socketTransport(socket, rec.name)) };
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-ops-'));
    store = Store.open(path.join(dir, 'remapfs.db'), { create: true });
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    svc?.stop();
    svc = undefined;
    served?.close();
    served = undefined;
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A result with the pair's own names taken out, to compare two pairs. */
  function anonymous(value: unknown, rec: PairRecord): unknown {
    let text = JSON.stringify(value);
    for (const s of [rec.uuid, rec.mainPath, rec.sparePath]) text = text.split(s).join('<x>');
    return JSON.parse(text.split(`"${rec.name}"`).join('"<name>"'));
  }

  it('the socket and the in-process transport give the same results', async () => {
    const a = makePair('a');
    const b = makePair('b');
    const local = pairOps(localTransport(store, a));
    const results: Record<string, unknown[]> = { local: [], socket: [] };
    const script = async (ops: PairOps, out: unknown[]) => {
      out.push(await ops.remap({ sectors: [8, 9, 800] }));
      out.push(await ops.remap({ sectors: [8] }));
      out.push(await ops['import-bad']({ sectors: [1600, 1601] }));
      out.push(await ops.config({ changes: { scanIdleMs: 7, readRetries: 2 } }));
      out.push(await ops.config({ changes: {} }));
      // Served, verify compares with the table in force; in-process, with the newest slot. The rest agrees.
      for (const repair of [false, true]) {
        const { source, sourceSlot, ...v } = await ops.verify({ repair });
        expect([source, sourceSlot]).toEqual(ops === local ? ['slots', 0] : ['memory', null]);
        out.push(v);
      }
      const st = await ops.status({});
      out.push({ ...st, mounted: undefined, mountpoint: undefined, database: undefined, counters: undefined, openHandles: undefined, ioFlusher: undefined });
      const h = await ops.health({});
      out.push([h.remappedBlocks, h.pendingBlocks, h.spareUsedPercent, h.score]);
    };
    await script(local, results.local as unknown[]);
    const { ops } = await serveOps(b);
    await script(ops, results.socket as unknown[]);
    expect((results.socket as unknown[]).map((v) => anonymous(v, b))).toEqual((results.local as unknown[]).map((v) => anonymous(v, a)));
    // The outcomes are real: both pairs hold the same remaps in the database.
    const remaps = (rec: PairRecord) => store.remaps.counts(rec.id);
    expect(remaps(b)).toEqual(remaps(a));
    expect(remaps(a).remapped).toBe(3);
    expect(remaps(a).pending).toBe(0);
  });

  it('a served status carries the live fields; a pair not served answers from the database', async () => {
    const a = makePair('a');
    const b = makePair('b');
    const { socket, ops } = await serveOps(a);
    const st = await ops.status({});
    expect([st.name, st.mounted, st.mountpoint, st.openHandles, typeof st.counters?.readOps]).toEqual(['a', true, path.join(dir, 'mnt'), 0, 'number']);
    const other = await pairOps(socketTransport(socket, b.name)).status({});
    expect([other.name, other.mounted, other.counters]).toEqual(['b', false, undefined]);
    await expect(pairOps(socketTransport(socket, b.name)).remap({ sectors: [8] })).rejects.toThrow('find pair b: not served');
  });

  it('tracking written blocks needs a serving daemon', async () => {
    const a = makePair('a');
    await expect(pairOps(localTransport(store, a)).track({ action: 'start', token: 0 })).rejects.toThrow(/^track a: only a daemon serving the pair can do this/);
    const { ops } = await serveOps(a);
    const [token] = await ops.track({ action: 'start', token: 0 });
    expect(token).toBeGreaterThan(0);
    expect(servedFile).not.toBe(served?.device); // the tracking layer is served
    servedFile?.write(Buffer.alloc(8192, 1), 3 * 4096);
    expect(await ops.track({ action: 'take', token: token as number })).toEqual([3, 4]);
    expect(await ops.track({ action: 'stop', token: token as number })).toEqual([]);
    expect(servedFile).toBe(served?.device); // and the pair's own device again after stop
  });

  it("an evacuation's tracking replaced by another's (or gone with a daemon restart) is refused, never taken as nothing written", async () => {
    const a = makePair('a');
    const { ops } = await serveOps(a);
    const [first] = await ops.track({ action: 'start', token: 0 });
    servedFile?.write(Buffer.alloc(4096, 1), 5 * 4096);
    const [second] = await ops.track({ action: 'start', token: 0 });
    expect(second).not.toBe(first);
    await expect(ops.track({ action: 'take', token: first as number })).rejects.toThrow(/^track writes of a: this evacuation's write tracking has ended \(another evacuation of the pair started, or the daemon restarted\) \(run evacuate again/);
    await expect(ops.track({ action: 'take', token: 0 })).rejects.toThrow(/tracking has ended/);
    servedFile?.write(Buffer.alloc(4096, 1), 6 * 4096);
    expect(await ops.track({ action: 'take', token: second as number })).toEqual([6]);
    expect(await ops.track({ action: 'stop', token: second as number })).toEqual([]);
    await expect(ops.track({ action: 'take', token: second as number })).rejects.toThrow(/tracking has ended/);
  });

  describe('a malformed request off the socket', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['a missing field', { op: 'remap', pair: 'a' }, /^control request: remap: "sectors" must be an array of non-negative integers/],
      ['a field of the wrong type', { op: 'remap', pair: 'a', sectors: '8' }, /^control request: remap: "sectors" must be an array/],
      ['a negative sector', { op: 'import-bad', pair: 'a', sectors: [8, -1] }, /^control request: import-bad: "sectors" must be an array of non-negative integers/],
      ['a fractional sector', { op: 'remap', pair: 'a', sectors: [8.5] }, /"sectors" must be an array of non-negative integers/],
      ['a missing pair', { op: 'remap', sectors: [8] }, /^control request: remap: "pair" must be a non-empty string/],
      ['an unknown operation', { op: 'explode', pair: 'a' }, /^control request: unknown operation "explode"/],
      ['no operation', { pair: 'a' }, /^control request: "op" must be a string/],
      ['an unknown field', { op: 'remap', pair: 'a', sectors: [8], force: true }, /^control request: remap: unknown field "force"/],
      ['a bad action', { op: 'track', pair: 'a', action: 'explode' }, /"action" must be one of start, take, stop/],
      ['repair not a boolean', { op: 'verify', pair: 'a', repair: 'yes' }, /"repair" must be true or false/],
      ['changes not an object', { op: 'config', pair: 'a', changes: [] }, /"changes" must be an object/],
      ['one bad setting among good ones', { op: 'config', pair: 'a', changes: { scanIdleMs: 7, readRetries: 'many' } }, /^config a: readRetries must be a number/],
      ['an unknown setting', { op: 'config', pair: 'a', changes: { colour: 'blue' } }, /^config a: unknown setting "colour"/],
      ['a list', [{ op: 'status', pair: 'a' }], /^control request: a request must be a JSON object/],
      ['a shutdown with a bad force', { op: 'shutdown', force: 'yes' }, /^control request: shutdown: "force" must be true or false/],
      ['a fault without sectors', { op: 'fault', action: 'add', kind: 'bad' }, /^control request: fault: "sectors" must be an array/],
    ];
    it.each(cases)('%s is refused with one error and changes nothing', async (_what, req, expected) => {
      const a = makePair('a');
      const { socket } = await serveOps(a);
      const before = { remaps: store.remaps.list(a.id), seq: served?.journal.state.sequence, config: { ...svc?.config } };
      let error: unknown;
      try {
        await request(socket, req as never, 10000);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(RemapfsError);
      expect((error as Error).message).toMatch(expected);
      expect((error as Error).message.split('\n')).toHaveLength(1);
      expect({ remaps: store.remaps.list(a.id), seq: served?.journal.state.sequence, config: { ...svc?.config } }).toEqual(before);
    });

    /** The daemon's reply line to what `send` writes on a raw connection (the connection is closed once it came). */
    async function rawReply(socket: string, send: (conn: Socket, answered: () => boolean) => void): Promise<string> {
      const net = await import('net');
      return new Promise<string>((resolve, reject) => {
        const conn = net.connect(socket);
        let data = '';
        conn.setEncoding('utf8');
        conn.on('connect', () => send(conn, () => data !== ''));
        conn.on('data', (c: string) => {
          data += c;
          if (!data.endsWith('\n')) return;
          conn.destroy();
          resolve(data);
        });
        conn.on('error', reject);
      });
    }

    it('a line that is not JSON is refused', async () => {
      const a = makePair('a');
      const { socket } = await serveOps(a);
      const reply = await rawReply(socket, (conn) => conn.write('{"op": "remap", "pair": \n'));
      expect(JSON.parse(reply)).toEqual({ ok: false, error: { op: 'control', object: 'request', message: 'not one JSON object', hint: 'the CLI and the daemon must be the same remapfs version' } });
    });

    it('a line longer than the bound is refused without being read to its end', async () => {
      const a = makePair('a');
      const { socket } = await serveOps(a);
      const reply = await rawReply(socket, (conn, answered) => {
        const spaces = Buffer.alloc(1 << 20, 0x20);
        let sent = 0;
        const more = (): void => {
          // Spaces and no newline, past the bound; stops once the daemon has answered.
          while (sent <= MAX_REQUEST_BYTES && !answered()) {
            sent += spaces.length;
            if (!conn.write(spaces)) break;
          }
        };
        conn.on('drain', more);
        more();
      });
      expect(JSON.parse(reply)).toMatchObject({ ok: false, error: { op: 'control', object: 'request', message: `the request is longer than ${MAX_REQUEST_BYTES} bytes` } });
    });
  });

  it('a remap naming more blocks than one takes, or than the spare has free, is refused before anything moves', async () => {
    const a = makePair('a');
    const { ops } = await serveOps(a);
    const before = store.remaps.list(a.id);
    const blocks = (n: number) => Array.from({ length: n }, (_, i) => i * 8);
    const free = served?.device.index.freeSpareBlocks ?? 0;
    expect(free).toBeLessThan(MAX_REMAP_BLOCKS); // this pair's device has fewer blocks than one remap may name
    await expect(ops.remap({ sectors: blocks(free + 1) })).rejects.toThrow(new RegExp(`^remap a: ${free + 1} blocks need a spare block, but only ${free} are free`));
    expect(store.remaps.list(a.id)).toEqual(before);
  });
});

describe("the control sockets' directory", () => {
  it('a directory others may write, or a symlink, is refused before anything listens there', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-sockdir-'));
    try {
      const open = path.join(base, 'open');
      fs.mkdirSync(open, { mode: 0o777 });
      fs.chmodSync(open, 0o777);
      await expect(serve(path.join(open, 'x.sock'), () => 1)).rejects.toThrow(/^serve control socket in .*open: may be written by others \(mode 777\)/);
      const link = path.join(base, 'link');
      fs.symlinkSync(open, link);
      await expect(serve(path.join(link, 'x.sock'), () => 1)).rejects.toThrow(/^serve control socket in .*link: is not a directory/);
      expect(fs.readdirSync(open)).toEqual([]);
      const good = path.join(base, 'good');
      const server = await serve(path.join(good, 'x.sock'), () => 1);
      server.close();
      expect(fs.statSync(good).mode & 0o777).toBe(0o700);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
