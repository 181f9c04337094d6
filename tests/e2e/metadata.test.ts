/**
 * End to end for the redundant metadata: damaged slots on a served pair,
 * verify/repair through the CLI, and a pair rebuilt from its spare after the
 * database is deleted.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { labPerTest } from '../helpers/lab-hooks.js';
import { execFileSync } from 'child_process';
import { checkTree, dropCaches, fileExtents, type Lab, waitFor, writeRandomTree } from '../../lib/lab/lab.js';
import { spareLayout } from '../../lib/format/layout.js';
import type { VerifyReport } from '../../lib/meta/verify.js';

const MiB = 1024 * 1024;
const BLOCK = 4096;

function sha256OfFile(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function corruptSlots(spareFile: string, spareBytes: number, slots: number[], seed: number): void {
  const layout = spareLayout(spareBytes, BLOCK);
  const fd = fs.openSync(spareFile, 'r+');
  try {
    for (const i of slots) {
      const r = layout.slots[i];
      if (!r) throw new Error(`no slot ${i}`);
      const bytes = crypto.createHash('sha512').update(`${seed}:${i}`).digest();
      const junk = Buffer.alloc((r.endBlock - r.startBlock) * BLOCK);
      for (let o = 0; o < junk.length; o += bytes.length) bytes.copy(junk, o);
      fs.writeSync(fd, junk, 0, junk.length, r.startBlock * BLOCK);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function verify(lab: Lab, name: string): { status: number; report: VerifyReport } {
  const r = lab.cli(['verify', name, '--json']);
  return { status: r.status, report: JSON.parse(r.stdout) as VerifyReport };
}

describe('redundant metadata end to end', () => {
  const lab = labPerTest();

  it('serves correct data with 1 to 4 damaged slots, names them, repairs them, and rebuilds all 5 from the database', async () => {
    const spareBytes = 16 * MiB;
    const main = lab.image('main.img', 32 * MiB);
    const spare = lab.image('spare.img', spareBytes);
    lab.ok(['init', 'm', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'm');
    fs.writeFileSync(vfile, crypto.randomBytes(32 * MiB), { flag: 'r+' });
    lab.ok(['remap', 'm', '0', '8', '4096', '30000', String(32 * 2048 - 9)]);
    const want = sha256OfFile(vfile);
    expect(verify(lab, 'm').status).toBe(0);

    const sets = [[3], [0, 4], [1, 2, 4], [0, 1, 2, 3]];
    for (const [k, bad] of sets.entries()) {
      corruptSlots(spare, spareBytes, bad, k);
      dropCaches();
      expect(sha256OfFile(vfile)).toBe(want);
      const v = verify(lab, 'm');
      expect(v.status).toBe(1);
      expect(v.report.consistent).toBe(false);
      expect(v.report.slots.filter((s) => !s.valid).map((s) => s.index)).toEqual(bad);
      for (const s of v.report.slots.filter((x) => !x.valid)) expect(s.reason).toBeTruthy();
      const rep = lab.cli(['repair', 'm']);
      expect(rep.status).toBe(0);
      expect(rep.stdout).toMatch(/slot \d rewritten/);
      const after = verify(lab, 'm');
      expect(after.status).toBe(0);
      expect(after.report.slots.every((s) => s.valid && s.current)).toBe(true);
    }

    // All five lost while mounted: the database (and the daemon's table) rebuild them.
    corruptSlots(spare, spareBytes, [0, 1, 2, 3, 4], 9);
    expect(verify(lab, 'm').report.slots.every((s) => !s.valid)).toBe(true);
    expect(lab.cli(['repair', 'm']).status).toBe(0);
    expect(verify(lab, 'm').status).toBe(0);

    // All five lost while not mounted: the database rebuilds them, and the mount serves the same data.
    lab.ok(['unmount', mnt]);
    await daemon.exited;
    corruptSlots(spare, spareBytes, [0, 1, 2, 3, 4], 10);
    expect(verify(lab, 'm').status).toBe(1);
    const rep = lab.cli(['repair', 'm', '--json']);
    expect(rep.status).toBe(0);
    expect((JSON.parse(rep.stdout) as VerifyReport).repaired.length).toBe(5);
    expect(verify(lab, 'm').status).toBe(0);

    // Four damaged while not mounted: opening takes the one valid slot, repairs the others and logs it.
    corruptSlots(spare, spareBytes, [0, 1, 3, 4], 11);
    expect(verify(lab, 'm').report.slots.filter((s) => s.valid).map((s) => s.index)).toEqual([2]);
    const again = await lab.startDaemon(mnt);
    await waitFor('the repair log', () => [0, 1, 3, 4].every((i) => again.output().includes(`slot ${i} rewritten`)));
    expect(sha256OfFile(vfile)).toBe(want);
    expect(verify(lab, 'm').status).toBe(0);
    const status = JSON.parse(lab.ok(['status', 'm', '--json'])) as { remappedBlocks: number };
    expect(status.remappedBlocks).toBe(5);
  });

  it('rebuilds a pair from its spare after the database is deleted; ext4 sums are unchanged', async () => {
    const main = lab.image('main.img', 128 * MiB);
    const spare = lab.image('spare.img', 32 * MiB);
    const uuid = lab.ok(['init', 'lost', '--main', main, '--spare', spare]).trim();
    const mnt = lab.mkdir('mnt');
    const ext = lab.path('ext');
    const daemon = await lab.startDaemon(mnt);
    const loop = lab.attachLoop(path.join(mnt, 'lost'));
    lab.mkfsExt4(loop);
    lab.mountFs(loop, ext);
    const sums = writeRandomTree(ext, 24 * MiB, 3);
    execFileSync('sync');
    const sectors: number[] = [];
    for (const rel of [...sums.keys()].slice(0, 4)) {
      const e = fileExtents(path.join(ext, rel))[0];
      if (e) sectors.push(e.physicalBlock * 8, (e.physicalBlock + e.blockCount - 1) * 8);
    }
    lab.ok(['remap', 'lost', ...sectors.map(String)]);
    // Overwrite a remapped file region through ext4 after the remap, so the spare holds newer data than main.
    const firstFile = [...sums.keys()][0] as string;
    const fresh = crypto.randomBytes(fs.statSync(path.join(ext, firstFile)).size);
    fs.writeFileSync(path.join(ext, firstFile), fresh);
    sums.set(firstFile, crypto.createHash('sha256').update(fresh).digest('hex'));
    execFileSync('sync');
    const before = JSON.parse(lab.ok(['status', 'lost', '--json'])) as { remappedBlocks: number };
    expect(before.remappedBlocks).toBeGreaterThanOrEqual(4);

    lab.umountFs(ext);
    execFileSync('losetup', ['-d', loop]);
    lab.ok(['unmount', mnt]);
    await daemon.exited;
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(lab.dbPath + suffix, { force: true });

    // Moved to another directory under new names, as after a move to another machine.
    const moved = lab.mkdir('moved');
    const main2 = path.join(moved, 'disk-a.img');
    const spare2 = path.join(moved, 'disk-b.img');
    fs.renameSync(main, main2);
    fs.renameSync(spare, spare2);
    const imp = lab.cli(['import', '--spare', spare2, '--main', main2, '--json']);
    expect(imp.stderr).toBe('');
    expect(imp.status).toBe(0);
    const out = JSON.parse(imp.stdout) as { pair: string; uuid: string; remappedBlocks: number };
    expect(out).toMatchObject({ pair: 'lost', uuid, remappedBlocks: before.remappedBlocks });
    expect(verify(lab, 'lost').status).toBe(0);

    await lab.startDaemon(mnt);
    const loop2 = lab.attachLoop(path.join(mnt, 'lost'));
    dropCaches();
    lab.mountFs(loop2, ext);
    expect(checkTree(ext, sums)).toEqual([]);
    const status = JSON.parse(lab.ok(['status', 'lost', '--json'])) as { remappedBlocks: number; main: string };
    expect(status.remappedBlocks).toBe(before.remappedBlocks);
    expect(status.main).toBe(main2);

    // A second import of the same spare is refused and changes nothing.
    const twice = lab.cli(['import', '--spare', spare2, '--main', main2]);
    expect(twice.status).not.toBe(0);
    expect(twice.stderr.trim().split('\n')).toHaveLength(1);
  });
});
