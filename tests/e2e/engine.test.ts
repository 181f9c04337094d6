/**
 * The native engine (lib/native/engine.ts, native/engine/) on a real FUSE
 * mount: two pairs on image files opened here, a small JS slow path over the
 * same fds that keeps its own route map (what RemapDevice does through a
 * RouteMirror), and real tools (dd, fio, fallocate, losetup) in child
 * processes. The main thread never touches the mount synchronously: a request
 * that needs an upcall would wait for it.
 */
import * as crypto from 'crypto';
import * as childProcess from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFile } from 'child_process';
import { fuseUringOf, ringWorkersOf } from '../../lib/fs/adapter.js';
import { fuseUringExpected } from '../helpers/transport.js';
import { engineModule, engineUnavailable, isControlRequest, type EngineHandle, type EngineModule, type EngineRequest, ROUTE_MAIN, ROUTE_SLOW } from '../../lib/native/engine.js';

const BLOCK = 4096;
const SIZE_BYTES = 32 << 20;
const SPARE_BLOCKS = 1024;

interface Sh {
  code: number;
  out: string;
  err: string;
}
function sh(cmd: string): Promise<Sh> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', cmd], { maxBuffer: 1 << 26 }, (err, out, errOut) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: String(out).trim(), err: String(errOut) });
    });
  });
}
const tick = () => new Promise((r) => setTimeout(r, 10));

/**
 * The bytes of `file` in 4 KiB blocks [skip, skip + count) that are not zero, read by dd in a child process (the main
 * thread must not touch the mount). Fails when dd fails or reads less than asked: an EIO must not read as zeros.
 */
async function nonZeroBytes(file: string, skip: number, count: number, out: string, direct = true): Promise<number> {
  const r = await sh(`dd if=${file} of=${out} bs=4096 skip=${skip} count=${count}${direct ? ' iflag=direct' : ''} status=none 2>&1`);
  if (r.code !== 0) throw new Error(`dd of ${file} failed: ${r.out}`);
  const data = fs.readFileSync(out);
  if (data.length !== count * 4096) throw new Error(`dd of ${file} read ${data.length} bytes, not ${count * 4096}`);
  return data.length - data.filter((b) => b === 0).length;
}

/** One pair as the JS side sees it: fds and the route of every remapped block. */
class JsPair {
  readonly spareOf = new Map<number, number>();
  constructor(readonly id: number, readonly name: string, readonly mainFd: number, readonly spareFd: number) {}
  private each(offset: number, length: number, fn: (fd: number, bufOffset: number, len: number, devOffset: number) => void): void {
    for (let pos = offset; pos < offset + length; ) {
      const block = Math.floor(pos / BLOCK);
      const end = Math.min(offset + length, (block + 1) * BLOCK);
      const spare = this.spareOf.get(block);
      if (spare === undefined) fn(this.mainFd, pos - offset, end - pos, pos);
      else fn(this.spareFd, pos - offset, end - pos, spare * BLOCK + (pos - block * BLOCK));
      pos = end;
    }
  }
  read(buf: Buffer, offset: number, length: number): void {
    this.each(offset, length, (fd, b, n, d) => fs.readSync(fd, buf, b, n, d));
  }
  write(buf: Buffer, offset: number, length: number): void {
    this.each(offset, length, (fd, b, n, d) => fs.writeSync(fd, buf, b, n, d));
  }
}

describe('native engine on a real mount', () => {
  let m: EngineModule;
  let e: EngineHandle | undefined;
  let dir: string;
  let mnt: string;
  const pairs = new Map<number, JsPair>();
  const seen: EngineRequest[] = [];
  let onUpcall: ((req: EngineRequest) => boolean) | undefined; // returns true when it handled the request
  const loops: string[] = [];

  function upcall(req: EngineRequest): void {
    seen.push({ ...req, buf: undefined });
    if (onUpcall && onUpcall(req)) return;
    if (isControlRequest(req)) {
      if (req.op === 'getattr') return void m.complete(req.handle, req.path === '/.remapfs/info' ? 0 : -2, { mode: 0o100444, size: 5 });
      if (req.op === 'readdir') return void m.complete(req.handle, 0, ['info']);
      if (req.op === 'open') return void m.complete(req.handle, 9);
      if (req.op === 'read' && req.buf) {
        const n = Math.max(0, Math.min(req.length, 5 - req.offset));
        Buffer.from('hello').copy(req.buf, 0, req.offset, req.offset + n);
        return void m.complete(req.handle, n);
      }
      return void m.complete(req.handle, 0);
    }
    const p = pairs.get(req.pairId);
    if (!p) return void m.complete(req.handle, -5);
    if (req.op === 'read' && req.buf) p.read(req.buf, req.offset, req.length);
    else if (req.op === 'write' && req.buf) p.write(req.buf, req.offset, req.length);
    else if (req.op === 'fallocate') p.write(Buffer.alloc(req.length), req.offset, req.length);
    m.complete(req.handle, req.op === 'read' || req.op === 'write' ? req.length : 0);
  }

  /**
   * A pair on sparse images in `imageDir`; `direct`: opened O_DIRECT, as remapfs opens a main by default;
   * `open: false` leaves its fast path closed (as the adapter does until the pair's routes are published).
   */
  function addPair(id: number, name: string, opts: { imageDir?: string; direct?: boolean; open?: boolean } = {}): JsPair {
    const main = path.join(opts.imageDir ?? dir, `${name}.main`);
    const spare = path.join(opts.imageDir ?? dir, `${name}.spare`);
    fs.writeFileSync(main, '');
    fs.truncateSync(main, SIZE_BYTES);
    fs.writeFileSync(spare, '');
    fs.truncateSync(spare, SPARE_BLOCKS * BLOCK);
    const flags = fs.constants.O_RDWR | (opts.direct ? fs.constants.O_DIRECT : 0);
    const p = new JsPair(id, name, fs.openSync(main, flags), fs.openSync(spare, flags));
    pairs.set(id, p);
    const direct = opts.direct ?? false;
    m.addPair(e!, { id, name, sizeBytes: SIZE_BYTES, blockSize: BLOCK, mainFd: p.mainFd, spareFd: p.spareFd, direct, alignBytes: direct ? BLOCK : 1, readOnly: false });
    if (opts.open ?? true) m.openFastPath(e!, id);
    return p;
  }

  /** What RemapDevice.remapBlock does through the mirror: fence, copy, publish. */
  function remap(p: JsPair, block: number, spare: number): void {
    m.fence(e!, p.id, block, 1);
    try {
      const buf = Buffer.alloc(BLOCK);
      p.read(buf, block * BLOCK, BLOCK);
      fs.writeSync(p.spareFd, buf, 0, BLOCK, spare * BLOCK);
      p.spareOf.set(block, spare);
    } finally {
      m.publish(e!, p.id, new Float64Array([block]), new Float64Array([p.spareOf.get(block) ?? ROUTE_MAIN]), 1);
    }
  }
  function heal(p: JsPair, block: number): void {
    m.fence(e!, p.id, block, 1);
    try {
      const buf = Buffer.alloc(BLOCK);
      p.read(buf, block * BLOCK, BLOCK);
      fs.writeSync(p.mainFd, buf, 0, BLOCK, block * BLOCK);
      p.spareOf.delete(block);
    } finally {
      m.publish(e!, p.id, new Float64Array([block]), new Float64Array([p.spareOf.get(block) ?? ROUTE_MAIN]), 1);
    }
  }

  beforeAll(async () => {
    const mod = engineModule();
    if (!mod) throw new Error(`the native engine does not load: ${engineUnavailable()}`);
    m = mod;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-engine-'));
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    e = m.create({
      mountpoint: mnt, fsOptions: ['fsname=remapfs-engine-test'], maxThreads: 16, ringWorkers: ringWorkersOf(), fuseUring: fuseUringOf(),
      controlDir: '.remapfs', upcall, countInFlight: true,
    });
    addPair(1, 'a');
    addPair(2, 'b');
    m.mount(e);
    expect((await sh(`ls ${mnt}`)).out.split('\n').sort()).toEqual(['a', 'b']);
  });

  afterAll(async () => {
    for (const loop of loops) await sh(`losetup -d ${loop}`);
    if (e) m.unmount(e);
    for (const p of pairs.values()) {
      fs.closeSync(p.mainFd);
      fs.closeSync(p.spareFd);
    }
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(mnt);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('negotiates async direct I/O and 1 MiB requests; version and io flusher are reported', () => {
    const n = m.negotiated(e!);
    console.log('engine negotiated', JSON.stringify(n), m.version(), JSON.stringify(m.ioFlusher(e!)));
    expect(n.init).toBe(true);
    expect(n.asyncDio).toBe(true);
    expect(n.maxWrite).toBe(1 << 20);
    expect(m.version()).toMatch(/^remapfs-engine 1, libfuse 3\./);
    const f = m.ioFlusher(e!);
    expect(f.set + f.failed).toBeGreaterThan(0);
    // The io model: io_uring workers beside a blocking pool, or (REMAPFS_ENGINE_IO=blocking) the blocking pool alone.
    const model = { ringWorkers: n.ringWorkers > 0, poolThreads: n.poolThreads > 0, ringErrno: n.ringErrno };
    if (process.env.REMAPFS_ENGINE_IO === 'blocking') expect(model).toEqual({ ringWorkers: false, poolThreads: false, ringErrno: 0 });
    else expect(model).toEqual({ ringWorkers: true, poolThreads: true, ringErrno: 0 });
  });

  test('the transport: FUSE over io_uring entries where the kernel offers it, else /dev/fuse; requests come through it', async () => {
    const want = fuseUringExpected();
    for (let i = 0; i < 100 && want && m.negotiated(e!).fuseUringEntries === 0; i++) await tick(); // registered after INIT
    const before = m.negotiated(e!);
    expect({ registered: before.fuseUringEntries > 0, errno: before.fuseUringErrno }).toEqual({ registered: want, errno: want ? 0 : before.fuseUringErrno });
    expect((await sh(`dd if=/dev/urandom of=${mnt}/b bs=64k count=16 oflag=direct conv=notrunc 2>&1 && dd if=${mnt}/b bs=64k count=16 iflag=direct of=/dev/null 2>&1`)).code).toBe(0);
    expect((await sh(`cat ${mnt}/.remapfs/info`)).out).toBe('hello'); // an upcall, answered into its entry from JS
    const through = m.negotiated(e!).fuseUringRequests - before.fuseUringRequests;
    if (want) expect(through).toBeGreaterThanOrEqual(32);
    else expect(through).toBe(0);
  });

  test('a written pattern round-trips through the mount (sha256)', async () => {
    const pat = path.join(dir, 'pattern');
    fs.writeFileSync(pat, crypto.randomBytes(8 << 20));
    const want = crypto.createHash('sha256').update(fs.readFileSync(pat)).digest('hex');
    expect((await sh(`dd if=${pat} of=${mnt}/a bs=1M oflag=direct conv=notrunc,fsync 2>&1`)).code).toBe(0);
    expect((await sh(`dd if=${mnt}/a bs=1M count=8 iflag=direct 2>/dev/null | sha256sum`)).out.split(' ')[0]).toBe(want);
    expect((await sh(`head -c 8388608 ${dir}/a.main | sha256sum`)).out.split(' ')[0]).toBe(want);
    const st = m.stats(e!, 1);
    expect(st.writeBytes).toBeGreaterThanOrEqual(8 << 20);
    expect(st.slowReads + st.slowWrites).toBe(0);
  });

  test('routes published to the spare make reads and writes use the spare offset', async () => {
    const p = pairs.get(1)!;
    const before = (await sh(`dd if=${mnt}/a bs=4096 skip=10 count=2 iflag=direct 2>/dev/null | sha256sum`)).out;
    remap(p, 10, 3);
    remap(p, 11, 4);
    fs.writeSync(p.mainFd, Buffer.alloc(2 * BLOCK), 0, 2 * BLOCK, 10 * BLOCK); // main no longer holds them
    expect((await sh(`dd if=${mnt}/a bs=4096 skip=10 count=2 iflag=direct 2>/dev/null | sha256sum`)).out).toBe(before);
    expect((await sh(`dd if=/dev/urandom of=${dir}/blk bs=4096 count=1 2>/dev/null && dd if=${dir}/blk of=${mnt}/a bs=4096 seek=10 oflag=direct conv=notrunc 2>&1`)).code).toBe(0);
    expect((await sh(`dd if=${dir}/a.spare bs=4096 skip=3 count=1 2>/dev/null | cmp - ${dir}/blk`)).code).toBe(0);
    expect(await nonZeroBytes(`${dir}/a.main`, 10, 1, `${dir}/dd.out`, false)).toBe(0);
    expect(m.stats(e!, 1).slowReads).toBe(0);
  });

  test('a SLOW route makes the request arrive as an upcall', async () => {
    m.fence(e!, 1, 20, 1);
    try {
      const n = seen.length;
      expect((await sh(`dd if=${mnt}/a bs=4096 skip=20 count=1 iflag=direct 2>/dev/null | cmp - ${dir}/pattern -i 0:81920 -n 4096`)).code).toBe(0);
      expect((await sh(`dd if=${dir}/blk of=${mnt}/a bs=4096 seek=20 oflag=direct conv=notrunc 2>&1`)).code).toBe(0);
      const reqs = seen.slice(n).filter((r) => !isControlRequest(r));
      expect(reqs.map((r) => `${r.op}:${isControlRequest(r) ? '' : r.why}:${r.offset}`)).toEqual(['read:slow:81920', 'write:slow:81920']);
    } finally {
      m.publish(e!, 1, new Float64Array([20]), new Float64Array([ROUTE_MAIN]), 1);
    }
    expect((await sh(`dd if=${dir}/a.main bs=4096 skip=20 count=1 2>/dev/null | cmp - ${dir}/blk`)).code).toBe(0);
  });

  test('writesSlow sends writes to JS (tracked) and leaves reads fast', async () => {
    m.setWritesSlow(e!, 2, true);
    const n = seen.length;
    try {
      expect((await sh(`dd if=${dir}/blk of=${mnt}/b bs=4096 seek=1 oflag=direct conv=notrunc 2>&1 && dd if=${mnt}/b bs=4096 count=1 iflag=direct of=/dev/null 2>&1`)).code).toBe(0);
    } finally {
      m.setWritesSlow(e!, 2, false);
    }
    expect(seen.slice(n).map((r) => `${r.op}:${isControlRequest(r) ? '' : r.why}`)).toEqual(['write:tracked']);
  });

  test('the control directory is served by upcalls', async () => {
    expect((await sh(`ls ${mnt}/.remapfs && cat ${mnt}/.remapfs/info`)).out).toBe('info\nhello');
    expect((await sh(`cat ${mnt}/.remapfs/nothing`)).code).not.toBe(0);
  });

  test('a JS exception in an upcall fails that request with EIO instead of hanging it', async () => {
    m.fence(e!, 1, 30, 1);
    onUpcall = (req) => {
      if (!isControlRequest(req) && req.offset === 30 * BLOCK) throw new Error('slow path bug');
      return false;
    };
    try {
      const r = await sh(`dd if=${mnt}/a bs=4096 skip=30 count=1 iflag=direct of=/dev/null 2>&1`);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/Input\/output error/);
    } finally {
      onUpcall = undefined;
      m.publish(e!, 1, new Float64Array([30]), new Float64Array([ROUTE_MAIN]), 1);
    }
  });

  test('fence and remap while fio writes with verify run concurrently lose nothing', async () => {
    const p = pairs.get(2)!;
    const fio = sh(`fio --name=race --filename=${mnt}/b --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --size=16M ` +
      `--verify=crc32c --verify_state_save=0 --do_verify=1 --verify_fatal=1 --verify_backlog=256 --numjobs=1 --randrepeat=0 2>&1`);
    let done = false;
    void fio.then(() => (done = true));
    let remaps = 0;
    let heals = 0;
    let nextSpare = 0;
    while (!done) {
      for (let i = 0; i < 8; i++) {
        const block = Math.floor(Math.random() * (16 << 20) / BLOCK);
        if (p.spareOf.has(block)) {
          heal(p, block);
          heals++;
        } else if (nextSpare < SPARE_BLOCKS) {
          remap(p, block, nextSpare++);
          remaps++;
        }
      }
      await tick();
    }
    const r = await fio;
    console.log(`engine race: ${remaps} remaps, ${heals} heals during fio; stats ${JSON.stringify(m.stats(e!, 2))}`);
    expect(r.out).not.toMatch(/verify|bad magic|crc32c/i);
    expect(r.code).toBe(0);
    expect(remaps).toBeGreaterThan(0);
    // and a full re-read through the mount matches what JS reads via its own routes
    const want = Buffer.alloc(16 << 20);
    p.read(want, 0, want.length);
    const got = (await sh(`dd if=${mnt}/b bs=1M count=16 iflag=direct 2>/dev/null | sha256sum`)).out.split(' ')[0];
    expect(got).toBe(crypto.createHash('sha256').update(want).digest('hex'));
  });

  test('fallocate punch and zero read back zeros, also on a remapped block; unsupported modes get EOPNOTSUPP', async () => {
    const p = pairs.get(1)!;
    remap(p, 40, 50);
    await sh(`dd if=${dir}/pattern of=${mnt}/a bs=4096 seek=36 skip=36 count=16 oflag=direct conv=notrunc 2>&1`);
    const nonZero = (skip: number, count: number) => nonZeroBytes(`${mnt}/a`, skip, count, `${dir}/dd.out`);
    expect(await nonZero(36, 8)).toBeGreaterThan(0);
    expect((await sh(`fallocate -p -o ${36 * BLOCK} -l ${8 * BLOCK} ${mnt}/a`)).code).toBe(0);
    expect(await nonZero(36, 8)).toBe(0);
    expect((await sh(`fallocate -z -o ${44 * BLOCK} -l ${8 * BLOCK} ${mnt}/a`)).code).toBe(0);
    expect(await nonZero(44, 8)).toBe(0);
    expect(m.stats(e!, 1).routeEntries).toBe(3); // blocks 10, 11, 40 stay remapped
    expect(await nonZeroBytes(`${dir}/a.spare`, 50, 1, `${dir}/dd.out`, false)).toBe(0);
    for (const flags of ['-c', '-i', '']) { // collapse, insert, plain allocation
      const r = await sh(`fallocate ${flags} -o 0 -l ${BLOCK} ${mnt}/a 2>&1`);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/not supported/i);
    }
  });

  test('requests past the end: read gets 0 bytes, write ENOSPC, fallocate EINVAL', async () => {
    const blocks = SIZE_BYTES / BLOCK;
    const past = await sh(`dd if=${mnt}/a of=${dir}/dd.out bs=4096 skip=${blocks} count=1 iflag=direct 2>&1`);
    expect({ code: past.code, records: /^0\+0 records in$/m.test(past.out), bytes: fs.statSync(`${dir}/dd.out`).size }).toEqual({ code: 0, records: true, bytes: 0 });
    expect((await sh(`dd if=/dev/zero of=${mnt}/a bs=4096 seek=${blocks} count=1 oflag=direct conv=notrunc 2>&1`)).out).toMatch(/No space left/);
    expect((await sh(`fallocate -p -o ${SIZE_BYTES - BLOCK} -l ${2 * BLOCK} ${mnt}/a 2>&1`)).out).toMatch(/Invalid argument/);
    expect((await sh(`truncate -s 1M ${mnt}/a 2>&1`)).out).toMatch(/not permitted/);
  });

  test('a pair removed while a handle is open gets EIO and nothing is written', async () => {
    const p = addPair(3, 'c');
    const script = `import os,sys\nfd=os.open('${mnt}/c',os.O_RDWR)\nprint('open',flush=True)\nsys.stdin.readline()\n` +
      `for f in (lambda: os.pwrite(fd,b'x'*4096,0), lambda: os.pread(fd,4096,0)):\n  try:\n    f(); print('ok',flush=True)\n  except OSError as e:\n    print(e.errno,flush=True)\n`;
    fs.writeFileSync(path.join(dir, 'holder.py'), script);
    const child = childProcess.spawn('python3', [path.join(dir, 'holder.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    while (!out.includes('open')) await tick();
    expect(m.stats(e!, 3).openHandles).toBe(1);
    m.removePair(e!, 3);
    expect(m.stats(e!, 3).openHandles).toBe(1); // removed, its handle still counted (until forgetPair)
    child.stdin.write('go\n');
    await new Promise((r) => child.on('exit', r));
    expect(out.trim().split('\n')).toEqual(['open', '5', '5']);
    for (let i = 0; i < 200 && m.stats(e!, 3).openHandles !== 0; i++) await tick(); // RELEASE follows the close
    expect(m.stats(e!, 3).openHandles).toBe(0);
    m.forgetPair(e!, 3);
    expect(() => m.stats(e!, 3)).toThrow(/no pair with id 3/);
    expect(() => m.forgetPair(e!, 3)).toThrow(/no removed pair with id 3/);
    expect((await sh(`ls ${mnt}`)).out.split('\n')).not.toContain('c');
    const buf = Buffer.alloc(BLOCK);
    fs.readSync(p.mainFd, buf, 0, BLOCK, 0);
    expect(buf.equals(Buffer.alloc(BLOCK))).toBe(true);
    expect(() => m.fence(e!, 3, 0, 1)).toThrow(/no pair with id 3/);
  });

  test('a pair added while mounted: until its fast path opens, every read, write and fallocate goes to JS, which routes it', async () => {
    const p = addPair(5, 'f', { open: false });
    // What the adapter publishes after addPair: block 0 lives on the spare. The engine must not serve it from main meanwhile.
    const onSpare = crypto.randomBytes(BLOCK);
    fs.writeSync(p.spareFd, onSpare, 0, BLOCK, 10 * BLOCK);
    p.spareOf.set(0, 10);
    m.publish(e!, 5, new Float64Array([0]), new Float64Array([10]), 1);
    const before = m.stats(e!, 5);
    const got = await sh(`dd if=${mnt}/f bs=4096 count=1 iflag=direct 2>/dev/null | sha256sum`);
    expect(got.out.split(' ')[0]).toBe(crypto.createHash('sha256').update(onSpare).digest('hex'));
    expect((await sh(`dd if=/dev/urandom of=${mnt}/f bs=4096 seek=1 count=1 oflag=direct conv=notrunc 2>&1`)).code).toBe(0);
    expect((await sh(`fallocate -p -o ${2 * BLOCK} -l ${BLOCK} ${mnt}/f 2>&1`)).code).toBe(0);
    const closed = m.stats(e!, 5);
    expect({ slowReads: closed.slowReads - before.slowReads, slowWrites: closed.slowWrites - before.slowWrites }).toEqual({ slowReads: 1, slowWrites: 2 });
    m.openFastPath(e!, 5);
    expect((await sh(`dd if=${mnt}/f bs=4096 skip=1 count=1 iflag=direct of=/dev/null 2>&1 && dd if=/dev/zero of=${mnt}/f bs=4096 seek=3 count=1 oflag=direct conv=notrunc 2>&1`)).code).toBe(0);
    const open = m.stats(e!, 5);
    expect({ slowReads: open.slowReads, slowWrites: open.slowWrites, readOps: open.readOps > closed.readOps, writeOps: open.writeOps > closed.writeOps })
      .toEqual({ slowReads: closed.slowReads, slowWrites: closed.slowWrites, readOps: true, writeOps: true });
    m.removePair(e!, 5);
    pairs.delete(5);
    fs.closeSync(p.mainFd);
    fs.closeSync(p.spareFd);
  });

  test('1 MiB requests split into more device calls than a ring worker keeps in flight: verified by fio at queue depth 16', async () => {
    // Every other block of the first 8 MiB on the spare: a 1 MiB request is 128 main calls and 8 vectored spare
    // calls, so two in flight pass RING_MAX_OPS (256) and the worker waits for room while requests keep arriving.
    // Allocated images: in sparse ones every write would wait (EAGAIN) and go to a retry thread instead.
    const p = addPair(6, 'g', { open: false });
    fs.writeSync(p.mainFd, Buffer.alloc(8 << 20), 0, 8 << 20, 0);
    fs.writeSync(p.spareFd, Buffer.alloc(4 << 20), 0, 4 << 20, 0);
    fs.fsyncSync(p.mainFd);
    fs.fsyncSync(p.spareFd);
    const blocks = Float64Array.from({ length: 1024 }, (_, i) => 2 * i);
    const routes = Float64Array.from({ length: 1024 }, (_, i) => i);
    blocks.forEach((b, i) => p.spareOf.set(b, routes[i] as number));
    m.publish(e!, 6, blocks, routes, blocks.length);
    m.openFastPath(e!, 6);
    const r = await sh(`fio --name=split --filename=${mnt}/g --rw=write --bs=1M --iodepth=16 --ioengine=libaio --direct=1 --size=8M ` +
      `--loops=8 --verify=crc32c --verify_state_save=0 --do_verify=1 --verify_fatal=1 2>&1`);
    expect({ code: r.code, errors: r.out.split('\n').filter((l) => /verify|error|bad/i.test(l) && !/err= 0/.test(l)) }).toEqual({ code: 0, errors: [] });
    const st = m.stats(e!, 6);
    expect({ slowReads: st.slowReads, slowWrites: st.slowWrites, readBytes: st.readBytes >= 64 << 20, writeBytes: st.writeBytes >= 64 << 20 })
      .toEqual({ slowReads: 0, slowWrites: 0, readBytes: true, writeBytes: true });
    // Where fio's last pass left each block: the spare for remapped blocks, main for the rest, as the JS side reads it.
    const viaMount = (await sh(`dd if=${mnt}/g bs=1M count=8 iflag=direct 2>/dev/null | sha256sum`)).out.split(' ')[0];
    const buf = Buffer.alloc(8 << 20);
    p.read(buf, 0, buf.length);
    expect(viaMount).toBe(crypto.createHash('sha256').update(buf).digest('hex'));
    m.removePair(e!, 6);
    pairs.delete(6);
    fs.closeSync(p.mainFd);
    fs.closeSync(p.spareFd);
  });

  test('writes the disk cannot start without waiting (O_DIRECT into a sparse image) are redone off the ring worker and land', async () => {
    // A disk file system, as users have: on tmpfs the engine copies inline and nothing would wait.
    const fsType = (await sh('stat -f -c %T /var/tmp')).out;
    if (fsType === 'tmpfs' || fsType === 'ramfs') throw new Error(`/var/tmp is ${fsType}; this test needs a disk file system there`);
    const imageDir = fs.mkdtempSync('/var/tmp/remapfs-engine-wait-');
    try {
      const p = addPair(4, 'd', { imageDir, direct: true });
      const pat = path.join(dir, 'pattern-d');
      fs.writeFileSync(pat, crypto.randomBytes(16 << 20));
      const want = crypto.createHash('sha256').update(fs.readFileSync(pat)).digest('hex');
      // Every 64 KiB write allocates in the sparse main: with RWF_NOWAIT the kernel answers EAGAIN first.
      const r = await sh(`dd if=${pat} of=${mnt}/d bs=64k oflag=direct conv=notrunc,fsync 2>&1`);
      expect(r.code).toBe(0);
      expect((await sh(`dd if=${mnt}/d bs=1M count=16 iflag=direct 2>/dev/null | sha256sum`)).out.split(' ')[0]).toBe(want);
      expect((await sh(`head -c ${16 << 20} ${imageDir}/d.main | sha256sum`)).out.split(' ')[0]).toBe(want);
      const st = m.stats(e!, 4);
      console.log(`engine would-wait retries: ${st.waitRetries} of ${st.writeOps} writes`);
      expect(st.slowReads + st.slowWrites).toBe(0);
      if (process.env.REMAPFS_ENGINE_IO === 'blocking') expect(st.waitRetries).toBe(0);
      else expect(st.waitRetries).toBeGreaterThan(0);
      expect(st.waitRetries).toBeLessThanOrEqual(st.readOps + st.writeOps);
      m.removePair(e!, 4);
      pairs.delete(4);
      fs.closeSync(p.mainFd);
      fs.closeSync(p.spareFd);
    } finally {
      fs.rmSync(imageDir, { recursive: true, force: true });
    }
  });

  test('fio at queue depth 32 on a loop device reaches the engine concurrently', async () => {
    const att = await sh(`losetup --direct-io=on --sector-size 4096 --find --show ${mnt}/b`);
    expect(att.code).toBe(0);
    loops.push(att.out);
    const before = m.stats(e!, 2);
    const r = await sh(`fio --name=qd --filename=${att.out} --rw=randrw --bs=4k --iodepth=32 --ioengine=libaio --direct=1 --size=16M ` +
      `--verify=crc32c --verify_state_save=0 --do_verify=1 --verify_fatal=1 --numjobs=1 --group_reporting 2>&1`);
    const after = m.stats(e!, 2);
    const iops = r.out.match(/IOPS=[^,]+/g) ?? [];
    console.log(`engine loop QD32: maxInFlight ${after.maxInFlight}, ops ${after.readOps + after.writeOps - before.readOps - before.writeOps}, fio ${iops.join(' ')}`);
    expect(r.code).toBe(0);
    expect(after.maxInFlight).toBeGreaterThan(1);
    expect((await sh(`losetup -d ${att.out}`)).code).toBe(0);
    loops.pop();
  });

  test('unmount while an upcall is outstanding returns, fails the request and leaves no mount', async () => {
    const mnt2 = path.join(dir, 'mnt2');
    fs.mkdirSync(mnt2);
    let pending: EngineRequest | undefined;
    const e2 = m.create({ mountpoint: mnt2, fsOptions: ['fsname=remapfs-engine-test2'], maxThreads: 4, controlDir: null, upcall: (req) => void (pending = req) });
    const p = pairs.get(1)!;
    m.addPair(e2, { id: 7, name: 'x', sizeBytes: SIZE_BYTES, blockSize: BLOCK, mainFd: p.mainFd, spareFd: -1, direct: false, alignBytes: 1, readOnly: true });
    try {
      m.mount(e2);
      m.fence(e2, 7, 0, 1);
      const reader = sh(`dd if=${mnt2}/x bs=4096 count=1 iflag=direct of=/dev/null 2>&1`);
      while (!pending) await tick();
      m.unmount(e2);
      const r = await reader;
      expect(r.code).not.toBe(0);
      expect(m.complete(pending.handle, 0)).toBe(false);
    } finally {
      m.unmount(e2);
    }
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(mnt2);
    expect(ROUTE_SLOW).toBe(-2);
  });
});
