/**
 * End to end on real parts: images, remapfs mount, a loop device, ext4, real
 * files and sha256 sums; manual remaps while mounted; restart of the daemon.
 */
import * as childProcess from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { checkTree, dropCaches, fileExtents, Lab, requireKernelFeatures, waitFor, writeRandomTree } from '../../lib/lab/lab.js';
import { readAt } from '../helpers/read-at.js';
import { expectedServedBy, servedBy } from '../helpers/transport.js';

const MiB = 1024 * 1024;

describe('remapfs end to end', () => {
  let lab: Lab;

  beforeAll(() => requireKernelFeatures());
  beforeEach(() => {
    lab = new Lab();
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  it('keeps ext4 file contents intact across remaps, cache drops, remounts and daemon restarts', async () => {
    const main = lab.image('main.img', 256 * MiB);
    const spare = lab.image('spare.img', 64 * MiB);
    const uuid = lab.ok(['init', 'disk0', '--main', main, '--spare', spare]).trim();
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const mnt = lab.mkdir('mnt');
    const ext = lab.path('ext');
    let daemon = await lab.startDaemon(mnt);
    let loop = lab.attachLoop(path.join(mnt, 'disk0'));
    lab.mkfsExt4(loop);
    lab.mountFs(loop, ext);
    const sums = writeRandomTree(ext, 72 * MiB);
    fs.mkdirSync(path.join(ext, 'empty-dir'));
    lab.ok(['status', 'disk0']);
    execSync('sync');

    // Remap sectors that hold file data: the first, a middle and the last block of some files.
    const sectors: number[] = [];
    const files = [...sums.keys()].filter((_, i) => i % 3 === 0);
    for (const rel of files) {
      const extents = fileExtents(path.join(ext, rel));
      const first = extents[0];
      const last = extents[extents.length - 1];
      if (!first || !last) continue;
      sectors.push(first.physicalBlock * 8, (last.physicalBlock + last.blockCount - 1) * 8 + 7);
      if (first.blockCount > 2) sectors.push((first.physicalBlock + 1) * 8 + 3);
    }
    expect(sectors.length).toBeGreaterThan(6);
    const remapOut = JSON.parse(lab.ok(['remap', 'disk0', ...sectors.map(String), '--json'])) as {
      remaps: Array<{ mainBlock: number; spareBlock: number; already: boolean }>;
    };
    const newRemaps = remapOut.remaps.filter((r) => !r.already);
    expect(newRemaps.length).toBeGreaterThan(6);
    await waitFor('the daemon to log the remaps', () => daemon.output().includes('reason manual'));

    dropCaches();
    expect(checkTree(ext, sums)).toEqual([]);
    lab.umountFs(ext);
    dropCaches();
    lab.mountFs(loop, ext);
    expect(checkTree(ext, sums)).toEqual([]);

    // Stop everything, start again.
    lab.umountFs(ext);
    execSync(`losetup -d ${loop}`);
    lab.ok(['unmount', mnt]);
    expect(await daemon.exited).toBe(0);
    const stopped = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as { remappedBlocks: number; mounted: boolean };
    expect(stopped.mounted).toBe(false);
    expect(stopped.remappedBlocks).toBe(newRemaps.length);

    daemon = await lab.startDaemon(mnt);
    loop = lab.attachLoop(path.join(mnt, 'disk0'));
    lab.mountFs(loop, ext);
    expect(checkTree(ext, sums)).toEqual([]);
    const live = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as {
      remappedBlocks: number;
      mounted: boolean;
      engine: string;
      counters: { readOps: number };
      negotiated?: { maxWrite: number; asyncDio: boolean; ringWorkers: number; fuseUringEntries: number };
    };
    expect(live.mounted).toBe(true);
    expect(live.remappedBlocks).toBe(newRemaps.length);
    // Every request counts, whether the native engine served it alone or through JavaScript.
    expect(live.counters.readOps).toBeGreaterThan(0);
    const engine = process.env.REMAPFS_ENGINE ?? 'native';
    expect(live.engine).toBe(engine);
    if (engine === 'native') expect([live.negotiated?.maxWrite, live.negotiated?.asyncDio]).toEqual([1024 * 1024, true]);
    if (engine === 'native') expect(servedBy(live.negotiated)).toEqual(expectedServedBy()); // its io model and transport, as this project asks
    else expect(live.negotiated).toBeUndefined();
    expect(lab.ok(['status', 'disk0'])).toMatch(new RegExp(`remapped\\s+${newRemaps.length} blocks`));
    // The human status names the engine and, for the native one, its io model (io_uring workers here).
    expect(lab.ok(['status', 'disk0'])).toMatch(engine === 'native' ? /^engine\s+native \(io_uring: \d+ ring workers, \d+ pool threads(; FUSE over io_uring: \d+( of \d+)? entries)?\)$/m : /^engine\s+fuse-native$/m);
  });

  it('really redirects a remapped block to the spare, for reads and writes', async () => {
    const blockSize = 4096;
    const main = lab.image('main.img', 8 * MiB);
    const spare = lab.image('spare.img', 2 * MiB);
    lab.ok(['init', 'r', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'r');
    const block = 1000;
    const original = Buffer.alloc(blockSize, 0xab);
    const fd = fs.openSync(vfile, 'r+');
    try {
      fs.writeSync(fd, original, 0, blockSize, block * blockSize);
      fs.fsyncSync(fd);
      const out = JSON.parse(lab.ok(['remap', 'r', String(block * 8 + 5), '--json'])) as { remaps: Array<{ mainBlock: number; spareBlock: number }> };
      const entry = out.remaps[0];
      expect(entry?.mainBlock).toBe(block);
      const spareBlock = entry?.spareBlock ?? -1;
      expect(spareBlock).toBeGreaterThanOrEqual(0);
      expect(readAt(spare, spareBlock * blockSize, blockSize)).toEqual(original);

      // A partial write through the virtual file lands on the spare, not on main.
      const patch = Buffer.from('written through remapfs');
      fs.writeSync(fd, patch, 0, patch.length, block * blockSize + 100);
      fs.fsyncSync(fd);
      const expected = Buffer.from(original);
      patch.copy(expected, 100);
      expect(readAt(spare, spareBlock * blockSize, blockSize)).toEqual(expected);
      expect(readAt(main, block * blockSize, blockSize)).toEqual(original);
      const back = Buffer.alloc(blockSize);
      fs.readSync(fd, back, 0, blockSize, block * blockSize);
      expect(back).toEqual(expected);

      // Its neighbours still live on main.
      const neighbour = Buffer.alloc(blockSize, 0x11);
      fs.writeSync(fd, neighbour, 0, blockSize, (block + 1) * blockSize);
      fs.fsyncSync(fd);
      expect(readAt(main, (block + 1) * blockSize, blockSize)).toEqual(neighbour);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('list shows as mounted only the pairs the daemon serves (not one made after it started); commands work on such a pair themselves', async () => {
    lab.ok(['init', 'served', '--main', lab.image('m1.img', 4 * MiB), '--spare', lab.image('s1.img', MiB)]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    lab.ok(['init', 'later', '--main', lab.image('m2.img', 4 * MiB), '--spare', lab.image('s2.img', MiB)]);
    const listed = (JSON.parse(lab.ok(['list', '--json'])) as { pairs: Array<{ name: string; mounted: boolean; mountpoint?: string }> }).pairs;
    expect(listed.map((p) => [p.name, p.mounted, p.mountpoint ?? null])).toEqual([['later', false, null], ['served', true, mnt]]);
    const human = lab.ok(['list']).split('\n');
    expect(human.find((l) => l.startsWith('served '))?.trimEnd().endsWith(mnt)).toBe(true);
    expect(human.find((l) => l.startsWith('later '))?.trimEnd().endsWith(' -')).toBe(true);
    // A pair the running daemon does not serve is worked on by the command itself, as with no daemon (docs/cli.md).
    const remapped = (): number => (JSON.parse(lab.ok(['status', 'later', '--json'])) as { remappedBlocks: number }).remappedBlocks;
    const before = remapped();
    expect(lab.cli(['remap', 'later', '8']).status).toBe(0);
    expect(remapped()).toBe(before + 1);
    expect(lab.cli(['verify', 'later']).status).toBe(0);
    const health = lab.cli(['health', 'later']);
    expect(health.status & 4).toBe(0);
    expect(health.stdout).not.toMatch(/cannot be checked/);
    // fault is for simulators: a daemon's mount point is named as such.
    const fault = lab.cli(['fault', mnt, 'list']);
    expect({ status: fault.status, lines: fault.stderr.trim().split('\n') }).toEqual({
      status: 1,
      lines: [`remapfs: fault ${mnt}: a remapfs daemon serves this mount point, not a simulator (fault changes the sectors of a running "remapfs simulate")`],
    });
  });

  it('remaps while not mounted, copying the data first', async () => {
    const main = lab.image('main.img', 4 * MiB);
    const spare = lab.image('spare.img', 1 * MiB);
    const pattern = Buffer.alloc(4096, 0x5a);
    const fd = fs.openSync(main, 'r+');
    fs.writeSync(fd, pattern, 0, 4096, 7 * 4096);
    fs.closeSync(fd);
    lab.ok(['init', 'off', '--main', main, '--spare', spare]);
    const out = JSON.parse(lab.ok(['remap', 'off', '56', '--json'])) as { remaps: Array<{ spareBlock: number }> };
    const spareBlock = out.remaps[0]?.spareBlock ?? -1;
    expect(readAt(spare, spareBlock * 4096, 4096)).toEqual(pattern);
    const again = JSON.parse(lab.ok(['remap', 'off', '60', '--json'])) as { remaps: Array<{ already: boolean; spareBlock: number }> };
    expect(again.remaps[0]).toMatchObject({ already: true, spareBlock });
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    expect(readAt(path.join(mnt, 'off'), 7 * 4096, 4096)).toEqual(pattern);
  });
  it.each(['native', 'fuse-native'])('serves unaligned reads and writes beyond 4 GiB, and remapped blocks, on the %s engine', async (engine) => {
    const GiB = 1024 * MiB;
    const blockSize = 4096;
    const main = lab.image('main.img', 5 * GiB); // sparse
    const spare = lab.image('spare.img', 2 * MiB);
    lab.ok(['init', 'big', '--main', main, '--spare', spare]);
    const remappedBlock = (4 * GiB) / blockSize + 3;
    const remap = JSON.parse(lab.ok(['remap', 'big', String(remappedBlock * 8), '--json'])) as { remaps: Array<{ spareBlock: number }> };
    const spareBlock = remap.remaps[0]?.spareBlock ?? -1;
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt, ['--engine', engine]);
    expect(daemon.output()).not.toMatch(/stock dispatch:|native engine cannot/);
    expect(JSON.parse(lab.ok(['status', 'big', '--json']))).toMatchObject({ engine });
    // From inside block 4 GiB/4K + 1 to inside block +5: unaligned at both ends, across the remapped block.
    const byteOffset = 4 * GiB + blockSize + 700;
    const data = Buffer.alloc(4 * blockSize + 300);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
    const vfile = path.join(mnt, 'big');
    const fd = fs.openSync(vfile, 'r+');
    try {
      expect(fs.writeSync(fd, data, 0, data.length, byteOffset)).toBe(data.length);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    dropCaches();
    expect(readAt(vfile, byteOffset, data.length)).toEqual(data);
    // Where the bytes landed: main, except the remapped block's part, which is on the spare.
    const inRemapped = remappedBlock * blockSize - byteOffset;
    expect(readAt(main, byteOffset, inRemapped)).toEqual(data.subarray(0, inRemapped));
    expect(readAt(spare, spareBlock * blockSize, blockSize)).toEqual(data.subarray(inRemapped, inRemapped + blockSize));
    expect(readAt(main, byteOffset + inRemapped + blockSize, data.length - inRemapped - blockSize)).toEqual(data.subarray(inRemapped + blockSize));
  });
});


function execSync(cmd: string): void {
  childProcess.execSync(cmd, { stdio: 'pipe' });
}
