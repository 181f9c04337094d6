// Drives the engine add-on (argv[2]) through a real FUSE mount under argv[3]:
// run by scripts/test-native.sh with the add-on built under ASan+UBSan.
// Exits 1 on a wrong result; always unmounts.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFile } = require('child_process');
const m = require(path.resolve(process.argv[2]));
const dir = fs.mkdtempSync(path.join(process.argv[3] || '/tmp', 'engine-smoke-'));
const mnt = path.join(dir, 'mnt');
fs.mkdirSync(mnt);
const SIZE = 16 << 20;
fs.writeFileSync(path.join(dir, 'main.img'), Buffer.alloc(0));
fs.truncateSync(path.join(dir, 'main.img'), SIZE);
fs.ftruncateSync(fs.openSync(path.join(dir, 'spare.img'), 'w'), 4 << 20);
const mainFd = fs.openSync(path.join(dir, 'main.img'), 'r+');
const spareFd = fs.openSync(path.join(dir, 'spare.img'), 'r+');
let hold = null; // a request left unanswered, for the unmount check
const seen = [];
const e = m.create({
  mountpoint: mnt, fsOptions: ['fsname=remapfs-smoke'], maxThreads: 4, controlDir: '.remapfs', countInFlight: true,
  ...(process.env.REMAPFS_ENGINE_IO === 'blocking' ? { ringWorkers: 0 } : {}),
  fuseUring: process.env.REMAPFS_ENGINE_TRANSPORT === 'dev' ? 0 : 1,
  upcall: (req) => {
    seen.push(`${req.op}:${req.why || req.path}`);
    if (req.op === 'read' && req.offset === 4096 * 100) { hold = req; return; }
    if (req.op === 'getattr' && req.path === '/.remapfs/boom') throw new Error('an exception in the upcall must become EIO');
    if (req.op === 'getattr') return m.complete(req.handle, req.path === '/.remapfs/x' ? 0 : -2, { mode: 0o100444, size: 3 });
    if (req.op === 'readdir') return m.complete(req.handle, 0, ['x']);
    if (req.op === 'open') return m.complete(req.handle, 5);
    if (req.op === 'read' && req.path) { const n = Math.max(0, Math.min(req.length, 3 - req.offset)); if (n) Buffer.from('abc').copy(req.buf, 0, req.offset, req.offset + n); return m.complete(req.handle, n); }
    if (req.op === 'read') return m.complete(req.handle, fs.readSync(mainFd, req.buf, 0, req.length, req.offset));
    if (req.op === 'write') return m.complete(req.handle, fs.writeSync(mainFd, req.buf, 0, req.length, req.offset));
    return m.complete(req.handle, 0);
  },
});
m.addPair(e, { id: 3, name: 'd', sizeBytes: SIZE, blockSize: 4096, mainFd, spareFd, direct: false, alignBytes: 1, readOnly: false });
m.openFastPath(e, 3);
m.mount(e);
// Commands run without the sanitizer runtimes that test-native.sh preloads into node.
const shEnv = { ...process.env, LD_PRELOAD: '' };
const sh = (c) => new Promise((res) => execFile('sh', ['-c', c], { maxBuffer: 1 << 26, env: shEnv }, (err, out, errOut) => res({ code: err ? err.code : 0, out: String(out).trim(), err: String(errOut) })));
let bad = 0;
let retries = 0; // requests redone off the ring worker (ring_retry): buffered writes on ext4 always are
let transport = '';
const expect = (what, ok) => { if (!ok) { bad++; console.error(`smoke: FAILED: ${what}`); } };
(async () => {
  try {
    const f = path.join(mnt, 'd');
    const pat = path.join(dir, 'pat');
    await sh(`head -c 4194304 /dev/urandom > ${pat}`);
    expect('write through the mount', (await sh(`dd if=${pat} of=${f} bs=64k conv=notrunc,fsync 2>&1`)).code === 0);
    expect('read back', (await sh(`cmp -n 4194304 ${pat} ${f}`)).code === 0);
    m.fence(e, 3, 2, 1);
    expect('SLOW block read via upcall', (await sh(`cmp -n 4194304 ${pat} ${f}`)).code === 0 && seen.includes('read:slow'));
    // Blocks 2 and 4 on spare blocks 7 and 8: one request's two spare runs continue each other (one vectored call).
    const spareImg = path.join(dir, 'spare.img');
    const mainImg = path.join(dir, 'main.img');
    await sh(`dd if=${pat} of=${spareImg} bs=4096 skip=2 seek=7 count=1 conv=notrunc 2>/dev/null && dd if=${pat} of=${spareImg} bs=4096 skip=4 seek=8 count=1 conv=notrunc 2>/dev/null`);
    m.publish(e, 3, new Float64Array([2, 4]), new Float64Array([7, 8]), 2);
    await sh(`dd if=/dev/zero of=${mainImg} bs=4096 seek=2 count=1 conv=notrunc 2>/dev/null && dd if=/dev/zero of=${mainImg} bs=4096 seek=4 count=1 conv=notrunc 2>/dev/null`);
    expect('read from the spare', (await sh(`cmp -n 4194304 ${pat} ${f}`)).code === 0);
    expect('64 KiB reads over two spare runs', (await sh(`dd if=${f} bs=64k count=1 iflag=direct 2>/dev/null | cmp -n 65536 - ${pat}`)).code === 0);
    await sh(`head -c 65536 /dev/urandom > ${pat}.64k`);
    expect('64 KiB write over two spare runs', (await sh(`dd if=${pat}.64k of=${f} bs=64k count=1 oflag=direct conv=notrunc 2>&1`)).code === 0);
    const landed = await sh(`cmp -n 4096 -i 8192:28672 ${pat}.64k ${spareImg} && cmp -n 4096 -i 16384:32768 ${pat}.64k ${spareImg} && ` +
      `[ "$(dd if=${mainImg} bs=4096 skip=2 count=1 2>/dev/null | tr -d '\\0' | wc -c)" = 0 ] && [ "$(dd if=${mainImg} bs=4096 skip=4 count=1 2>/dev/null | tr -d '\\0' | wc -c)" = 0 ] && ` +
      `cmp -n 8192 ${pat}.64k ${mainImg} && cmp -n 4096 -i 12288:12288 ${pat}.64k ${mainImg} && cmp -n 40960 -i 20480:20480 ${pat}.64k ${mainImg}`);
    expect(`the write's remapped blocks on the spare, the rest on main (${landed.err.trim()})`, landed.code === 0);
    await sh(`dd if=${pat}.64k of=${pat} bs=64k count=1 conv=notrunc 2>/dev/null`);
    expect('read back after the write', (await sh(`cmp -n 4194304 ${pat} ${f}`)).code === 0);
    // Every other block of main's 1-4 MiB on spare blocks 16-399 (allocated: no would-wait retries): a 1 MiB request
    // is 136 device calls, so three in flight pass a ring worker's 256 and it waits for room while requests arrive.
    fs.writeSync(spareFd, Buffer.alloc(384 * 4096), 0, 384 * 4096, 16 * 4096);
    fs.fsyncSync(spareFd);
    const splitBlocks = Float64Array.from({ length: 384 }, (_, i) => 256 + 2 * i);
    m.publish(e, 3, splitBlocks, Float64Array.from({ length: 384 }, (_, i) => 16 + i), 384);
    const split = await sh(`fio --name=split --filename=${f} --offset=1M --size=3M --rw=write --bs=1M --iodepth=8 --ioengine=libaio --direct=1 ` +
      `--loops=4 --verify=crc32c --verify_state_save=0 --do_verify=1 --verify_fatal=1 --output-format=terse 2>&1`);
    expect(`1 MiB requests of 136 device calls, verified (${split.out.slice(0, 200)})`, split.code === 0);
    // A queue whose entries all hold requests takes more (fring.c, fring_add_chunk): 32 in flight from one CPU.
    const entriesBefore = m.negotiated(e).fuseUringEntries;
    const burst = await sh(`taskset -c 0 fio --name=burst --filename=${f} --rw=randread --bs=4k --size=4M --iodepth=32 --ioengine=libaio --direct=1 --runtime=2 --time_based --output-format=terse 2>&1`);
    expect(`queue depth 32 read (${burst.out.slice(0, 200)})`, burst.code === 0);
    const entriesAfter = m.negotiated(e).fuseUringEntries;
    expect('control file', (await sh(`ls ${mnt}/.remapfs && cat ${mnt}/.remapfs/x`)).out === 'x\nabc');
    // RELEASEDIR may reach another thread before READDIR's answer has been written (fs.c, struct dirbuf).
    const lists = await Promise.all([0, 1, 2].map(() => sh(`for i in $(seq 1 1000); do set -- ${mnt}/.remapfs/*; [ "$1" = ${mnt}/.remapfs/x ] || exit 1; done`)));
    expect('directory listed 3000 times from 3 processes', lists.every((r) => r.code === 0));
    expect('punch reads zeros', (await sh(`fallocate -p -o 0 -l 16384 ${f} && head -c 16384 ${f} | tr -d '\\0' | wc -c`)).out === '0');
    expect('unsupported fallocate mode', /not supported/i.test((await sh(`fallocate -c -o 0 -l 4096 ${f}`)).err));
    expect('write past the end', (await sh(`dd if=/dev/zero of=${f} bs=4096 seek=4096 count=1 conv=notrunc 2>&1`)).code !== 0);
    const boom = await sh(`stat ${mnt}/.remapfs/boom 2>&1`); // its GETATTR goes to the upcall, which throws
    expect(`exception in upcall -> EIO (${boom.code}: ${boom.out})`, boom.code !== 0 && /Input\/output error/.test(boom.out) && seen.includes('getattr:/.remapfs/boom'));
    expect('truncate refused', (await sh(`truncate -s 1M ${f}`)).code !== 0);
    // A pair removed, then forgotten: stats answer for it in between (its handles may still be open), not after.
    m.addPair(e, { id: 9, name: 'g', sizeBytes: SIZE, blockSize: 4096, mainFd, spareFd, direct: false, alignBytes: 1, readOnly: false });
    m.openFastPath(e, 9);
    expect('read of a second pair', (await sh(`head -c 4096 ${mnt}/g | wc -c`)).out === '4096');
    m.removePair(e, 9);
    expect('stats of a removed pair', m.stats(e, 9).readOps > 0);
    m.forgetPair(e, 9);
    let refused = 0;
    for (const f of [() => m.stats(e, 9), () => m.forgetPair(e, 9)]) { try { f(); } catch { refused++; } }
    expect('a forgotten pair is gone', refused === 2);
    m.fence(e, 3, 100, 1);
    void sh(`dd if=${f} bs=4096 skip=100 count=1 of=/dev/null 2>&1`);
    while (!hold) await new Promise((r) => setTimeout(r, 20));
    const st = m.stats(e, 3);
    expect('stats count', st.readOps > 0 && st.writeOps > 0 && st.slowReads > 0 && st.fallocates > 0);
    retries = st.waitRetries;
    const neg = m.negotiated(e);
    const blocking = process.env.REMAPFS_ENGINE_IO === 'blocking';
    // FUSE over io_uring: expected where the kernel's opt-in is on (test-native.sh turns it on for a run)
    let optIn = 'N';
    try { optIn = fs.readFileSync('/sys/module/fuse/parameters/enable_uring', 'utf8').trim(); } catch { /* no such kernel */ }
    const fring = optIn === 'Y' && !blocking && process.env.REMAPFS_ENGINE_TRANSPORT !== 'dev';
    transport = fring ? `FUSE over io_uring, ${neg.fuseUringRequests} requests through ${entriesBefore} entries, then ${entriesAfter}` : '/dev/fuse';
    expect(`transport (${entriesBefore} then ${entriesAfter} entries, ${neg.fuseUringRequests} requests, errno ${neg.fuseUringErrno})`,
      fring ? entriesBefore > 0 && entriesAfter > entriesBefore && neg.fuseUringRequests > 1000 : neg.fuseUringEntries === 0 && neg.fuseUringRequests === 0);
    expect(`io model (${neg.ringWorkers} ring workers, ringErrno ${neg.ringErrno})`, blocking ? neg.ringWorkers === 0 : neg.ringWorkers > 0 && neg.poolThreads > 0);
  } catch (err) {
    bad++;
    console.error('smoke: FAILED:', err.message);
  } finally {
    m.unmount(e);
    m.unmount(e);
  }
  expect('no mount left', !fs.readFileSync('/proc/mounts', 'utf8').includes(mnt));
  expect('complete after unmount is refused', hold === null || m.complete(hold.handle, 0) === false);
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`smoke: ${bad ? 'FAILED' : 'passed'} (${process.env.REMAPFS_ENGINE_IO === 'blocking' ? 'blocking' : 'io_uring'} model, ${transport}, ${seen.length} upcalls, ${retries} would-wait retries)`);
  process.exit(bad ? 1 : 0);
})();
