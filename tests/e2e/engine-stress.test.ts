/**
 * The native engine under stress: fio (libaio, direct, queue depth 32,
 * verify=crc32c) on a loop device (direct I/O, 4 KiB sectors) over a pair file
 * served by the native engine, while blocks of fio's region are remapped
 * through the control socket, and, in a region of the same pair that the test
 * writes itself, blocks become pending and are healed by a write, and spare
 * blocks fail and are retired. Main and spare are `remapfs simulate` files, so
 * their faults are real EIO. Any verify error fails the test.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { alignedBuffer } from '../../lib/block/file-device.js';
import type { Lab } from '../../lib/lab/lab.js';
import type { PairStatus } from '../../lib/pair/ops.js';
import { expectedServedBy, servedBy } from '../helpers/transport.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;
const SECTORS_PER_BLOCK = BLOCK / 512;
/** fio's region: the first FIO_BYTES of the pair. The test's own blocks lie after it. */
const FIO_BYTES = 64 * MiB;
const OWN_FIRST_BLOCK = FIO_BYTES / BLOCK + 16;
/**
 * fio's writes are paced so that its write phase lasts at least
 * (FIO_BYTES / BLOCK) / WRITE_IOPS_CAP = 8 s on any machine: the faults below
 * (the first two rounds of the loop) must happen while fio runs, and a fast
 * disk once finished fio before them. Its verify phase is not paced.
 */
const WRITE_IOPS_CAP = 2000;

type Status = PairStatus & { engine?: string; engineCounters?: { readOps: number; writeOps: number; slowReads: number; slowWrites: number } };

function status(lab: Lab): Status {
  return JSON.parse(lab.ok(['status', 'st', '--json'])) as Status;
}

function pattern(block: number, generation: number): Buffer {
  const buf = alignedBuffer(BLOCK);
  for (let i = 0; i < BLOCK; i += 4) buf.writeUInt32LE((block * 2654435761 + generation * 40503 + i) >>> 0, i);
  return buf;
}

/** One O_DIRECT request on the pair file; returns the error code, or undefined. */
function directIo(file: string, op: 'read' | 'write', buf: Buffer, block: number): string | undefined {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT);
  try {
    if (op === 'read') fs.readSync(fd, buf, 0, BLOCK, block * BLOCK);
    else fs.writeSync(fd, buf, 0, BLOCK, block * BLOCK);
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  } finally {
    fs.closeSync(fd);
  }
}

function readBlock(file: string, block: number): Buffer {
  const buf = alignedBuffer(BLOCK);
  const err = directIo(file, 'read', buf, block);
  if (err) throw new Error(`read of block ${block}: ${err}`);
  return Buffer.from(buf);
}

describe('native engine stress', () => {
  const lab = labPerTest();

  it('fio verify=crc32c at QD32 on a loop device has no verify error while blocks are remapped, made pending and healed, and spare blocks retired', async () => {
    const mainImage = lab.image('main.img', 96 * MiB);
    const spareImage = lab.image('spare.img', 32 * MiB);
    const simMain = lab.mkdir('sim-main');
    const simSpare = lab.mkdir('sim-spare');
    await lab.startSimulator(mainImage, simMain);
    await lab.startSimulator(spareImage, simSpare);
    lab.ok(['init', 'st', '--main', path.join(simMain, 'disk'), '--spare', path.join(simSpare, 'disk')]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt, ['--engine', 'native']);
    expect(status(lab).engine).toBe('native');
    const vfile = path.join(mnt, 'st');
    const loop = lab.attachLoop(vfile, { directIo: true, sectorSize: 4096 });

    const fio = spawn(
      'fio',
      ['--name=stress', `--filename=${loop}`, '--rw=randwrite', '--bs=4k', `--size=${FIO_BYTES}`, '--ioengine=libaio', '--direct=1', '--iodepth=32', `--rate_iops=,${WRITE_IOPS_CAP}`, '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--verify_state_save=0', '--output-format=json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let fioOut = '';
    let fioErr = '';
    fio.stdout.on('data', (d: Buffer) => (fioOut += d.toString()));
    fio.stderr.on('data', (d: Buffer) => (fioErr += d.toString()));
    const fioExit = new Promise<number | null>((resolve) => fio.on('exit', (code) => resolve(code)));
    const running = () => fio.exitCode === null && fio.signalCode === null;
    const tick = () => new Promise((resolve) => setTimeout(resolve, 50));

    // While fio runs: remap blocks of its region (one block in 97 apart, so each remap is a new one).
    let remapsUnderIo = 0;
    let pendingHealed = false;
    let retired = false;
    const own = new Map<number, Buffer>();
    try {
    for (let i = 0; running() || !pendingHealed || !retired; i++) {
      if (running()) {
        const block = (i * 97 + 5) % (FIO_BYTES / BLOCK);
        const out = JSON.parse(lab.ok(['remap', 'st', String(block * SECTORS_PER_BLOCK), '--json'])) as { remaps: Array<{ already: boolean }> };
        if (running() && out.remaps[0]?.already === false) remapsUnderIo++;
      }
      if (i === 0) {
        // Pending, then healed by a write: a sector of the block goes bad on main; reading it fails with EIO and
        // makes the block pending; a whole-block write remaps it with the new data.
        const b = OWN_FIRST_BLOCK;
        expect(directIo(vfile, 'write', pattern(b, 0), b)).toBeUndefined();
        lab.ok(['fault', simMain, 'add', String(b * SECTORS_PER_BLOCK + 3)]);
        expect(directIo(vfile, 'read', alignedBuffer(BLOCK), b)).toBe('EIO');
        expect(status(lab).pendingBlocks).toBe(1);
        expect(directIo(vfile, 'write', pattern(b, 1), b)).toBeUndefined();
        expect(status(lab).pendingBlocks).toBe(0);
        own.set(b, pattern(b, 1));
        pendingHealed = running();
      }
      if (i === 1) {
        // Retirement: a remapped block's spare block goes bad; the next write moves the block to another spare block.
        const b = OWN_FIRST_BLOCK + 1;
        expect(directIo(vfile, 'write', pattern(b, 0), b)).toBeUndefined();
        const out = JSON.parse(lab.ok(['remap', 'st', String(b * SECTORS_PER_BLOCK), '--json'])) as { remaps: Array<{ spareBlock: number }> };
        const spareBlock = out.remaps[0]?.spareBlock ?? -1;
        expect(spareBlock).toBeGreaterThanOrEqual(0);
        const retiredBefore = status(lab).retiredSpareBlocks;
        lab.ok(['fault', simSpare, 'add', `${spareBlock * SECTORS_PER_BLOCK}-${spareBlock * SECTORS_PER_BLOCK + SECTORS_PER_BLOCK - 1}`]);
        expect(directIo(vfile, 'write', pattern(b, 1), b)).toBeUndefined();
        expect(status(lab).retiredSpareBlocks).toBe(retiredBefore + 1);
        own.set(b, pattern(b, 1));
        retired = running();
      }
      if (!running() && (!pendingHealed || !retired)) break; // fio finished first: the checks below fail
      await tick();
    }
    } finally {
      if (running()) fio.kill('SIGKILL'); // a failed check: do not leave fio on the loop device
    }
    const code = await fioExit;
    expect(fioErr).not.toMatch(/verify|error/i);
    expect(code).toBe(0);
    const job = (JSON.parse(fioOut) as { jobs: Array<{ error: number; read: { io_bytes: number }; write: { io_bytes: number } }> }).jobs[0];
    expect(job?.error).toBe(0);
    expect(job?.write.io_bytes).toBe(FIO_BYTES);
    expect(job?.read.io_bytes).toBe(FIO_BYTES);
    // Every fault happened while fio was running.
    expect(pendingHealed).toBe(true);
    expect(retired).toBe(true);
    expect(remapsUnderIo).toBeGreaterThan(0);
    for (const [b, want] of own) expect(readBlock(vfile, b)).toEqual(want);
    const s = status(lab);
    expect(s.pendingBlocks).toBe(0);
    expect(servedBy(s.negotiated)).toEqual(expectedServedBy()); // the io model and transport this project asks for
    expect(s.engineCounters?.writeOps).toBeGreaterThanOrEqual(FIO_BYTES / BLOCK);
    // The engine's own threads served most of it: the fast path really ran under the remaps.
    expect((s.engineCounters?.slowWrites ?? Infinity) * 2).toBeLessThan(s.engineCounters?.writeOps ?? 0);
    expect(lab.cli(['verify', 'st']).status).toBe(0);
  });
});
