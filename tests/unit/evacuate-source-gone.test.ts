/**
 * evacuate() (lib/rescue/evacuate.ts, source-gone.ts) when its source goes
 * away in the middle of a run: a disk that fails every read from then on (the
 * FaultDevice layer with every sector bad: EIO, no hint), a read that fails
 * with ENODEV, and an image file that leaves its path. The run stops with
 * SourceGoneError, the mapfile keeps what was not judged untried ('?', never
 * '-'), and a run after the source is back finishes the copy. Failures of a
 * source that is still there stay bad sectors, as before.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BlockDevice } from '../../lib/block/device.js';
import { FaultDevice } from '../../lib/block/fault-device.js';
import { FileDevice } from '../../lib/block/file-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { RemapfsError } from '../../lib/errors.js';
import { evacuate } from '../../lib/rescue/evacuate.js';
import { AreaMap, parseMapfile, sectorsOf } from '../../lib/rescue/mapfile.js';
import { GONE_PROBE_AFTER, identityCheck, PROBE_SPOTS, SourceGoneError, SourceWatch } from '../../lib/rescue/source-gone.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
const SECTORS = SIZE / 512;

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const without = (b: Buffer, sectors: readonly number[]) => {
  const c = Buffer.from(b);
  for (const s of sectors) c.fill(0, s * 512, (s + 1) * 512);
  return c;
};
const areasOf = (file: string) => parseMapfile(fs.readFileSync(file, 'utf8')).areas.map((a) => `${a.pos / 512}+${a.size / 512}${a.status}`);

/** Fails every read with ENODEV once unplugged, as a block device whose disk left does (BLK_STS_OFFLINE). */
class Unpluggable implements BlockDevice {
  unplugged = false;
  readsAfter = 0;
  constructor(readonly next: BlockDevice) {}
  get name(): string {
    return `unpluggable(${this.next.name})`;
  }
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(buf: Buffer, byteOffset: number): void {
    if (this.unplugged) {
      this.readsAfter++;
      throw new RemapfsError('read', this.name, Object.assign(new Error('ENODEV: no such device, read'), { code: 'ENODEV' }));
    }
    this.next.read(buf, byteOffset);
  }
  write(buf: Buffer, byteOffset: number): void {
    this.next.write(buf, byteOffset);
  }
  flush(): void {}
  close(): void {}
}

describe('evacuate when the source goes away', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-evac-gone-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function disk(): { mem: MemoryDevice; target: MemoryDevice; mapfilePath: string } {
    const mem = new MemoryDevice('disk', SIZE);
    mem.data.set(crypto.randomBytes(SIZE));
    return { mem, target: new MemoryDevice('target', SIZE), mapfilePath: path.join(dir, `${Math.random()}.map`) };
  }

  it('every read failing with EIO from the fifth chunk on: the run stops, the untried rest is ? (not -), and a run after the disk is back completes', async () => {
    const { mem, target, mapfilePath } = disk();
    const source = new FaultDevice(mem, 'sdz');
    source.badSectors.add(100); // a real bad sector, in the first chunk
    let readsAtUnplug = -1;
    const unplugAt = (doneBytes: number) => {
      if (readsAtUnplug >= 0 || doneBytes < 3 * MiB) return;
      readsAtUnplug = source.readCount;
      for (let s = 0; s < SECTORS; s++) source.badSectors.add(s); // gone: nothing reads, not even what read before
    };
    const run = evacuate({ source, target, mapfilePath, restart: false, retries: 1, onProgress: unplugAt });
    await expect(run).rejects.toThrow(SourceGoneError);
    // The probe: the last good read (chunk 3), then the copied area (chunks 1-3), PROBE_APART_BYTES apart.
    await expect(run).rejects.toThrow(`evacuate sdz: the source is gone: ${GONE_PROBE_AFTER} reads in a row failed, and then so did sectors ${(3 * MiB) / 512}, ${MiB / 512}, ${(2 * MiB) / 512}, which read before`);
    // Chunk 0 failed while the disk was there (chunk 1 read after it): it stays failed (*) for pass 2. Chunks 1-3 copied;
    // the 4 chunks that failed after the unplug, and everything after them, untried.
    expect(areasOf(mapfilePath)).toEqual(['0+2048*', '2048+6144+', `8192+${SECTORS - 8192}?`]);
    // It stopped at once: the failed chunks and the probe of PROBE_SPOTS places (each with its retry), no
    // sector-by-sector pass over a disk that is gone.
    expect(source.readCount - readsAtUnplug).toBe(GONE_PROBE_AFTER + PROBE_SPOTS * 2);

    // The disk is back (with its one bad sector): the run goes on from the mapfile and finishes.
    source.badSectors.clear();
    source.badSectors.add(100);
    const again = await evacuate({ source, target, mapfilePath, restart: false, retries: 1 });
    expect({ resumed: again.resumed, bad: again.badSectors, copied: again.copiedBytes }).toEqual({ resumed: true, bad: [100], copied: SIZE - 3 * MiB - 512 });
    expect(sectorsOf(parseMapfile(fs.readFileSync(mapfilePath, 'utf8')).areas, ['-'])).toEqual([100]);
    expect(sha(target.data)).toBe(sha(without(mem.data, [100])));
  });

  it('a mapfile saved while failures are not judged yet does not hold them', async () => {
    const { mem, target, mapfilePath } = disk();
    const seen: string[][] = [];
    let unplugged = false;
    // The mapfile as each read of the (unplugged) source finds it.
    const source = new (class extends FaultDevice {
      override read(buf: Buffer, byteOffset: number): void {
        if (unplugged) seen.push(areasOf(mapfilePath));
        super.read(buf, byteOffset);
      }
    })(mem, 'sdz');
    let t = 0;
    const now = () => (t += 10_000); // every save is due
    const onProgress = (done: number) => {
      if (unplugged || done < 3 * MiB) return;
      unplugged = true;
      for (let s = 0; s < SECTORS; s++) source.badSectors.add(s);
    };
    await expect(evacuate({ source, target, mapfilePath, restart: false, retries: 0, now, onProgress })).rejects.toThrow(SourceGoneError);
    // Chunk 4 failed and was saved before chunk 5 was read (and failed, and the probe found the source gone): as untried.
    expect(seen.length).toBe(GONE_PROBE_AFTER);
    for (const areas of seen) expect(areas).toEqual([`0+6144+`, `6144+${SECTORS - 6144}?`]);
    expect(areasOf(mapfilePath)).toEqual([`0+6144+`, `6144+${SECTORS - 6144}?`]);
  });

  it('a read failing with ENODEV stops the run at that read; the chunk it was reading stays untried', async () => {
    const { mem, target, mapfilePath } = disk();
    const source = new Unpluggable(mem);
    const run = evacuate({ source, target, mapfilePath, restart: false, retries: 2, onProgress: (done) => void (source.unplugged ||= done >= 5 * MiB) });
    await expect(run).rejects.toThrow(/the source is gone: reads fail with ENODEV \(read unpluggable\(disk\): ENODEV: no such device\)/);
    expect(source.readsAfter).toBe(1);
    expect(areasOf(mapfilePath)).toEqual([`0+${(5 * MiB) / 512}+`, `${(5 * MiB) / 512}+${SECTORS - (5 * MiB) / 512}?`]);
    source.unplugged = false;
    const again = await evacuate({ source, target, mapfilePath, restart: false, retries: 2 });
    expect({ resumed: again.resumed, bad: again.badSectors.length }).toEqual({ resumed: true, bad: 0 });
    expect(sha(target.data)).toBe(sha(mem.data));
  });

  it('the device going away during the sector-by-sector pass: what that pass had not judged stays failed (*), not bad', async () => {
    const { mem, target, mapfilePath } = disk();
    const source = new FaultDevice(mem, 'sdz');
    for (let s = 2048 + 300; s < 2048 + 310; s++) source.badSectors.add(s); // real bad sectors in chunk 1, never reached
    let unplugged = false;
    // Pass 1 copies 15 MiB; pass 2 then reads chunk 1 sector by sector: gone after 200 of its sectors.
    const onProgress = (done: number) => {
      if (unplugged || done < 15 * MiB + 200 * 512) return;
      unplugged = true;
      for (let s = 0; s < SECTORS; s++) source.badSectors.add(s);
    };
    await expect(evacuate({ source, target, mapfilePath, restart: false, retries: 0, onProgress })).rejects.toThrow(SourceGoneError);
    const m = parseMapfile(fs.readFileSync(mapfilePath, 'utf8'));
    expect(m.areas.map((a) => `${a.pos / 512}+${a.size / 512}${a.status}`)).toEqual(['0+2248+', '2248+1848*', `4096+${SECTORS - 4096}+`]);
    expect(m.currentPass).toBe(2);
    source.badSectors.clear();
    const again = await evacuate({ source, target, mapfilePath, restart: false, retries: 0 });
    expect(again.badSectors).toEqual([]);
    expect(sha(target.data)).toBe(sha(mem.data));
  });

  it('an image file that leaves its path: the identity check stops the run at the first failed read', async () => {
    const img = path.join(dir, 'source.img');
    const data = crypto.randomBytes(SIZE);
    fs.writeFileSync(img, data);
    const file = FileDevice.open(img, { mode: 'buffered', readOnly: true });
    try {
      const source = new FaultDevice(file, img);
      const target = new MemoryDevice('target', SIZE);
      const mapfilePath = path.join(dir, 'file.map');
      const probe = { identity: identityCheck([{ what: 'the source', path: img }]) };
      let readsAtUnplug = -1;
      const onProgress = (done: number) => {
        if (readsAtUnplug >= 0 || done < 2 * MiB) return;
        readsAtUnplug = source.readCount;
        fs.renameSync(img, `${img}.away`);
        for (let s = 0; s < SECTORS; s++) source.badSectors.add(s);
      };
      await expect(evacuate({ source, target, mapfilePath, restart: false, retries: 0, probe, onProgress })).rejects.toThrow(`the source is gone: the source ${img} is gone`);
      expect(source.readCount - readsAtUnplug).toBe(1);
      expect(areasOf(mapfilePath)).toEqual([`0+4096+`, `4096+${SECTORS - 4096}?`]);
      fs.renameSync(`${img}.away`, img);
      source.badSectors.clear();
      const again = await evacuate({ source, target, mapfilePath, restart: false, retries: 0, probe });
      expect(again.badSectors).toEqual([]);
      expect(sha(target.data)).toBe(sha(data));
    } finally {
      file.close();
    }
  });

  it('a source that is still there: a long bad area stays bad (-), as before', async () => {
    const { mem, target, mapfilePath } = disk();
    const source = new FaultDevice(mem, 'sdz');
    const bad = Array.from({ length: 6 * 2048 }, (_, i) => 4 * 2048 + i); // chunks 4-9: six whole chunks fail in a row
    for (const s of bad) source.badSectors.add(s);
    const r = await evacuate({ source, target, mapfilePath, restart: false, retries: 0 });
    expect(r.badSectors).toEqual(bad);
    expect(sha(target.data)).toBe(sha(without(mem.data, bad)));
  });

  it('a flaky sector where the probe looks first does not make a disk that is there "gone": other places that read before are tried', async () => {
    const { mem, target, mapfilePath } = disk();
    const source = new FaultDevice(mem, 'sdz');
    const bad = Array.from({ length: 6 * 2048 }, (_, i) => 4 * 2048 + i); // chunks 4-9 fail
    for (const s of bad) source.badSectors.add(s);
    const flaky = (3 * MiB) / 512; // the first sector of chunk 3, the last good read before the bad area
    const onProgress = (done: number) => void (done >= 4 * MiB && source.badSectors.add(flaky)); // reads no more from then on
    const r = await evacuate({ source, target, mapfilePath, restart: false, retries: 0, onProgress });
    expect(r.badSectors).toEqual(bad);
    expect(sectorsOf(parseMapfile(fs.readFileSync(mapfilePath, 'utf8')).areas, ['-'])).toEqual(bad);
    expect(sha(target.data)).toBe(sha(without(mem.data, bad)));
  });

  it('the probe reads a sector main holds: a remapped block that still reads (from the spare) does not prove main is there', () => {
    const { mem } = disk();
    let unplugged = false;
    const spareHeld = (off: number) => off < MiB; // the first MiB: remapped blocks, served from the spare
    const source: BlockDevice = {
      name: 'sdz',
      sizeBytes: SIZE,
      read: (buf, off) => {
        if (unplugged && !spareHeld(off)) throw new RemapfsError('read', 'sdz', Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
        mem.read(buf, off);
      },
      write: () => undefined,
      flush: () => undefined,
      close: () => undefined,
    };
    const map = new AreaMap(SIZE);
    map.set(MiB, MiB, '+'); // copied before, on main
    const watch = new SourceWatch(map, source, { heldByMain: (off) => !spareHeld(off) }, 1, '/nonexistent.map');
    expect(watch.read(Buffer.alloc(4096), 0, '*')).toBe(true); // the last good read: a remapped block
    unplugged = true; // main fails every read; its node stays, so the identity check cannot tell
    expect(watch.read(Buffer.alloc(MiB), 4 * MiB, '*')).toBe(false);
    expect(() => watch.read(Buffer.alloc(MiB), 5 * MiB, '*')).toThrow(/the source is gone: 2 reads in a row failed, and then so did sector 2048, which read before/);
    expect(map.withStatus('*')).toEqual([]);
  });
});
