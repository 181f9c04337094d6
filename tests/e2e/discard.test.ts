/**
 * Discard and write-zeroes reach the pair (issue 15: fallocate). A loop device
 * over a pair file turns `blkdiscard` into fallocate(PUNCH_HOLE|KEEP_SIZE) and
 * `blkdiscard -z` into fallocate(ZERO_RANGE) on the file; the engine punches
 * or zeroes main, and the spare for a remapped block, whose remap stays. The
 * range then reads back as zeros, through the loop device and the pair file,
 * and the data around it is untouched.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { PairStatus } from '../../lib/pair/ops.js';
import { readAt } from '../helpers/read-at.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;


describe('discard and write-zeroes through a loop device', () => {
  const lab = labPerTest();

  it.each([
    ['discard (punch hole)', [] as string[]],
    ['write-zeroes (zero range)', ['-z']],
  ])('%s zeroes main and a remapped block, keeps the remap, and leaves the rest', (_name, flags) => {
    lab.ok(['init', 'd', '--main', lab.image('main.img', 32 * MiB), '--spare', lab.image('spare.img', 8 * MiB)]);
    const mnt = lab.mkdir('mnt');
    return lab.startDaemon(mnt).then(() => {
      const vfile = path.join(mnt, 'd');
      const data = crypto.randomBytes(4 * MiB);
      fs.writeFileSync(path.join(lab.path('data')), data);
      const loop = lab.attachLoop(vfile, { directIo: true, sectorSize: 4096 });
      execFileSync('dd', [`if=${lab.path('data')}`, `of=${loop}`, 'bs=1M', 'oflag=direct', 'status=none']);
      // Block 300 lies inside the range below; it is remapped, so its data is on the spare.
      lab.ok(['remap', 'd', String((300 * BLOCK) / 512)]);
      const before = JSON.parse(lab.ok(['status', 'd', '--json'])) as PairStatus;
      const fromByte = 256 * BLOCK;
      const byteLength = 128 * BLOCK;
      execFileSync('blkdiscard', [...flags, '-o', String(fromByte), '-l', String(byteLength), loop]);
      execFileSync('blockdev', ['--flushbufs', loop]);

      const zeros = Buffer.alloc(byteLength);
      expect(readAt(loop, fromByte, byteLength).equals(zeros)).toBe(true);
      expect(readAt(vfile, fromByte, byteLength).equals(zeros)).toBe(true);
      // Around it, the data is intact.
      expect(readAt(vfile, 0, fromByte).equals(data.subarray(0, fromByte))).toBe(true);
      const after = fromByte + byteLength;
      expect(readAt(vfile, after, data.length - after).equals(data.subarray(after))).toBe(true);
      // The remap is kept, and the engine did the work (no write through JavaScript).
      const st = JSON.parse(lab.ok(['status', 'd', '--json'])) as PairStatus & { engineCounters?: { fallocates: number } };
      expect(st.remappedBlocks).toBe(before.remappedBlocks);
      if ((process.env.REMAPFS_ENGINE ?? 'native') === 'native') expect(st.engineCounters?.fallocates).toBeGreaterThan(0);
      expect(lab.cli(['verify', 'd']).status).toBe(0);
    });
  });
});
