/**
 * Rescue end to end: evacuation of a pair whose main sits behind
 * `remapfs simulate` (remaps and pending blocks), through the daemon while
 * mounted, interrupted and resumed, and stopped by its source going away
 * and resumed once it is back; its mapfile checked by GNU ddrescuelog;
 * badblocks lists and mapfiles imported and exported.
 */
import { spawn, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { alignedBuffer } from '../../lib/block/file-device.js';
import { Lab, REMAPFS_BIN, requireKernelFeatures, waitFor } from '../../lib/lab/lab.js';
import { parseMapfile, sectorsOf } from '../../lib/rescue/mapfile.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const MiB = 1024 * 1024;
const B = 4096;

function requireDdrescuelog(): void {
  if (spawnSync('sh', ['-c', 'command -v ddrescuelog']).status !== 0) throw new Error('ddrescuelog is missing (apt-get install gddrescue; scripts/setup.sh installs it)');
}

/** sha256 of a file with the given 512-byte sectors zeroed (the "outside the bad areas" view). */
function shaWithout(file: string, sectors: readonly number[]): string {
  const data = fs.readFileSync(file);
  for (const s of sectors) data.fill(0, s * 512, (s + 1) * 512);
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** ddrescuelog's own list of bad-sector (-) blocks of 512 bytes. */
function ddrescuelogBad(mapfile: string): number[] {
  const r = spawnSync('ddrescuelog', ['-b', '512', '-l', '-', mapfile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ddrescuelog refused ${mapfile}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

describe('rescue', () => {
  let lab: Lab;
  beforeAll(() => {
    requireKernelFeatures();
    requireDdrescuelog();
  });
  beforeEach(() => {
    lab = new Lab();
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  async function failingPair() {
    const image = lab.image('main.img', 48 * MiB);
    fs.writeFileSync(image, crypto.randomBytes(48 * MiB));
    const spare = lab.image('spare.img', 8 * MiB);
    const sim = lab.mkdir('sim');
    await lab.startSimulator(image, sim);
    lab.ok(['init', 'r', '--main', path.join(sim, 'disk'), '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'r');
    // Remaps (manual and write errors), then pending blocks whose bad sectors are known.
    lab.ok(['remap', 'r', '800', '16000']);
    lab.ok(['fault', sim, 'add', '24000-24003', '40000']);
    const fd = fs.openSync(vfile, 'r+');
    fs.writeSync(fd, Buffer.alloc(B, 0x77), 0, B, 3000 * B); // 24000 is in block 3000: the write remaps it
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    lab.ok(['fault', sim, 'add', '50001', '50007', '70000-70015', String(48 * 2048 - 16)]);
    lab.ok(['scan', 'r']);
    const pending = (JSON.parse(lab.ok(['status', 'r', '--json'])) as { pendingBlocks: number }).pendingBlocks;
    expect(pending).toBe(5); // blocks of 40000, 50001/50007, 70000-70007, 70008-70015, the one near the end
    return { image, spare, sim, mnt, daemon, vfile, unreadable: [40000, 50001, 50007, ...Array.from({ length: 16 }, (_, i) => 70000 + i), 48 * 2048 - 16] };
  }

  it('evacuates through the daemon: the target holds the readable content, the mapfile lists the unreadable sectors, and ddrescuelog accepts it', async () => {
    const { vfile, unreadable } = await failingPair();
    const target = lab.path('target.img');
    const r = lab.cli(['evacuate', 'r', '--to', target, '--verify', '--json']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { badSectors: number; throughDaemon: boolean; verified: boolean; mapfile: string };
    expect(out).toMatchObject({ badSectors: unreadable.length, throughDaemon: true, verified: true });
    expect(r.stderr).toMatch(/evacuate r: .*100\.0%/);
    expect(ddrescuelogBad(out.mapfile)).toEqual(unreadable);
    expect(sectorsOf(parseMapfile(fs.readFileSync(out.mapfile, 'utf8')).areas, ['-'])).toEqual(unreadable);
    // Everything outside the listed sectors equals the virtual device, read here with O_DIRECT
    // (through the page cache one bad sector would fail its whole page): 1 MiB at a time, sector by sector where that fails.
    const source = Buffer.alloc(48 * MiB);
    const fd = fs.openSync(vfile, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
    const chunk = alignedBuffer(MiB);
    for (let off = 0; off < source.length; off += MiB) {
      try {
        // A failing piece of a direct read can also show as a short read.
        if (fs.readSync(fd, chunk, 0, MiB, off) !== MiB) throw new Error('short read');
        chunk.copy(source, off);
      } catch {
        for (let s = 0; s < MiB; s += 512) {
          try {
            if (fs.readSync(fd, chunk, 0, 512, off + s) === 512) chunk.copy(source, off + s, 0, 512);
          } catch {
            // unreadable: stays zero, as in shaWithout
          }
        }
      }
    }
    fs.closeSync(fd);
    expect(shaWithout(target, unreadable)).toBe(crypto.createHash('sha256').update(source).digest('hex'));
  });

  it('an interrupted evacuation resumes and gives an identical result; writes made during the copy are copied too', async () => {
    const { vfile, unreadable, sim } = await failingPair();
    const full = lab.path('full.img');
    expect(lab.cli(['evacuate', 'r', '--to', full]).status).toBe(0);
    const part = lab.path('part.img');
    // Slow the device down (one slow sector per MiB, 150 ms each: about 7 s in all) so the copy can be killed in the middle.
    lab.ok(['fault', sim, 'add', '--slow', '--delay-ms', '150', ...Array.from({ length: 47 }, (_, i) => String((i + 1) * 2048 + 5))]);
    const child = spawn(process.execPath, [path.resolve(HERE_DIR, '../../../bin/remapfs'), 'evacuate', 'r', '--to', part], { env: lab.env(), stdio: 'ignore' });
    lab.onCleanup('kill the first evacuation', () => void child.kill('SIGKILL'));
    await waitFor('a first mapfile save', () => fs.existsSync(part + '.map') && /0x[0-9A-F]+\s+0x[0-9A-F]+\s+\+/.test(fs.readFileSync(part + '.map', 'utf8')), 20000);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    lab.ok(['fault', sim, 'clear', '--slow']);
    const mid = parseMapfile(fs.readFileSync(part + '.map', 'utf8'));
    const resumed = lab.cli(['evacuate', 'r', '--to', part, '--json']);
    expect(resumed.status).toBe(0);
    const done = JSON.parse(resumed.stdout) as { resumed: boolean; badSectors: number };
    expect(done.resumed).toBe(true);
    expect(done.badSectors).toBe(unreadable.length);
    expect(mid.areas.some((a) => a.status === '?') || mid.currentStatus !== '+').toBe(true);
    expect(crypto.createHash('sha256').update(fs.readFileSync(part)).digest('hex')).toBe(crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex'));
    expect(fs.readFileSync(part + '.map', 'utf8').split('\n').slice(2).join('\n')).toBe(fs.readFileSync(full + '.map', 'utf8').split('\n').slice(2).join('\n'));

    // Writes during a copy: once the copy has passed block 100, a writer changes it 401 times (each fsync'ed)
    // while the copy is still running (slowed down again); the copy must end with the last content, with no
    // second run: the daemon's write tracking catches it up.
    const live = lab.path('live.img');
    lab.ok(['fault', sim, 'add', '--slow', '--delay-ms', '150', ...Array.from({ length: 47 }, (_, i) => String((i + 1) * 2048 + 5))]);
    const ev = spawn(process.execPath, [path.resolve(HERE_DIR, '../../../bin/remapfs'), 'evacuate', 'r', '--to', live, '--json'], { env: lab.env(), stdio: ['ignore', 'pipe', 'ignore'] });
    lab.onCleanup('kill the evacuation', () => void ev.kill('SIGKILL'));
    let evOut = '';
    ev.stdout.on('data', (d: Buffer) => (evOut += d.toString()));
    const evExit = new Promise<number | null>((r) => ev.on('exit', (code) => r(code)));
    const block100Copied = () => {
      if (!fs.existsSync(live + '.map')) return false;
      const area = parseMapfile(fs.readFileSync(live + '.map', 'utf8')).areas.find((a) => a.pos <= 100 * B && a.pos + a.size >= 101 * B);
      return area?.status === '+';
    };
    await waitFor('the copy past block 100', block100Copied, 20000);
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(vfile)}, 'r+');
      for (let g = 0; g < 400; g++) { fs.writeSync(fd, Buffer.alloc(4096, g % 251), 0, 4096, 100 * 4096); fs.fsyncSync(fd); }
      fs.writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 100 * 4096); fs.fsyncSync(fd);`], { stdio: 'ignore' });
    lab.onCleanup('kill the writer', () => void writer.kill('SIGKILL'));
    expect(await new Promise<number | null>((r) => writer.on('exit', (code) => r(code)))).toBe(0);
    expect(ev.exitCode).toBeNull(); // the writes came while the copy was still running
    expect(await evExit).toBe(0);
    lab.ok(['fault', sim, 'clear', '--slow']);
    const got = Buffer.alloc(B);
    const lfd = fs.openSync(live, 'r');
    fs.readSync(lfd, got, 0, B, 100 * B);
    fs.closeSync(lfd);
    expect(got.equals(Buffer.alloc(B, 0xab))).toBe(true);
    expect(evOut).toContain('"throughDaemon": true');
  });

  it('a source that goes away mid-run: exit status 3 with one line, the untried rest left ? (not -), and a run after it is back completes the copy', async () => {
    const data = crypto.randomBytes(32 * MiB);
    const image = lab.image('main.img', 32 * MiB);
    fs.writeFileSync(image, data);
    const sim = lab.mkdir('sim');
    await lab.startSimulator(image, sim);
    lab.ok(['init', 'g', '--main', path.join(sim, 'disk'), '--spare', lab.image('spare.img', 16 * MiB)]);
    lab.ok(['fault', sim, 'add', '1000']); // a real bad sector, before the disk goes
    // Slow (one sector per MiB, 300 ms: about 9 s in all) so the copy is still running when the disk goes.
    lab.ok(['fault', sim, 'add', '--slow', '--delay-ms', '300', ...Array.from({ length: 31 }, (_, i) => String((i + 1) * 2048 + 5))]);
    const target = lab.path('target.img');
    const map = target + '.map';
    const child = spawn(process.execPath, [REMAPFS_BIN, 'evacuate', 'g', '--to', target], { env: lab.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitFor('a first mapfile save', () => fs.existsSync(map) && /0x[0-9A-F]+\s+0x[0-9A-F]+\s+\+/.test(fs.readFileSync(map, 'utf8')), 20000);
    // The disk goes: from now on nothing reads, not even what read before (the simulator's EIO, no errno hint).
    lab.ok(['fault', sim, 'add', `0-${32 * 2048 - 1}`]);
    lab.ok(['fault', sim, 'clear', '--slow']);
    expect(await exited).toBe(3);
    expect(stdout).toBe('');
    const errors = stderr.split('\n').filter((l) => l.startsWith('remapfs:'));
    expect(errors).toEqual([expect.stringMatching(/^remapfs: evacuate g: the source is gone: \d+ reads in a row failed, and then so did sectors? \d+(, \d+)*, which read before \(.*EIO.*\) \(what was not read is left non-tried \(\?\) in .*target\.img\.map: run evacuate again when the disk is back\)$/)]);
    const mid = parseMapfile(fs.readFileSync(map, 'utf8'));
    expect(mid.areas.filter((a) => a.status === '-')).toEqual([]);
    expect(mid.areas.filter((a) => a.status === '*')).toEqual([{ pos: 0, size: MiB, status: '*' }]); // sector 1000's chunk failed while the disk was there
    expect(mid.areas.some((a) => a.status === '+')).toBe(true);
    expect(mid.areas[mid.areas.length - 1]?.status).toBe('?');
    expect(mid.areas.filter((a) => a.status === '?').reduce((n, a) => n + a.size, 0)).toBeGreaterThanOrEqual(4 * MiB);

    // The disk is back, with its one bad sector: the run goes on from the mapfile.
    lab.ok(['fault', sim, 'clear']);
    lab.ok(['fault', sim, 'add', '1000']);
    const again = lab.cli(['evacuate', 'g', '--to', target, '--json']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ resumed: true, badSectors: 1 });
    expect(sectorsOf(parseMapfile(fs.readFileSync(map, 'utf8')).areas, ['-'])).toEqual([1000]);
    expect(shaWithout(target, [1000])).toBe(crypto.createHash('sha256').update(Buffer.from(data).fill(0, 1000 * 512, 1001 * 512)).digest('hex'));
  });

  it('imports a badblocks list and a ddrescue mapfile marking exactly the listed sectors; export and re-import give the same set', () => {
    const main = lab.image('main.img', 32 * MiB);
    fs.writeFileSync(main, crypto.randomBytes(32 * MiB));
    lab.ok(['init', 'b', '--main', main, '--spare', lab.image('spare.img', 8 * MiB)]);
    // badblocks -b 4096 style list: blocks 10 and 11, and 500.
    const list = lab.path('bad.txt');
    fs.writeFileSync(list, '10\n11\n500\n');
    const r = JSON.parse(lab.ok(['import-bad', 'b', '--badblocks', list, '--block-size', '4096', '--json'])) as { sectors: number; remapped: number };
    expect(r).toMatchObject({ sectors: 24, remapped: 3 });
    // A mapfile made by ddrescuelog from a list of sectors (an independent writer of the format).
    const sectors = [2001, 2002, 9000, 9001, 9002, 9003, 30000];
    const mapfile = lab.path('in.map');
    const made = spawnSync('ddrescuelog', ['-b', '512', '--create-mapfile=-+', '-s', String(32 * MiB), '-'], { input: sectors.join('\n') + '\n', encoding: 'utf8' });
    expect(made.status).toBe(0);
    fs.writeFileSync(mapfile, made.stdout);
    const m = JSON.parse(lab.ok(['import-bad', 'b', '--ddrescue-map', mapfile, '--json'])) as { sectors: number };
    expect(m.sectors).toBe(sectors.length);
    const expected = [...Array.from({ length: 16 }, (_, i) => 80 + i), ...Array.from({ length: 8 }, (_, i) => 4000 + i), ...sectors].sort((a, b) => a - b);
    const out = lab.path('out.map');
    lab.ok(['export', 'b', '--ddrescue-map', out]);
    expect(ddrescuelogBad(out)).toEqual(expected);
    // Re-import the export into a fresh pair: the same set comes back out.
    const env2 = { ...lab.env(), REMAPFS_DB: lab.path('second.db') };
    const main2 = lab.image('main2.img', 32 * MiB);
    expect(lab.cli(['init', 'c', '--main', main2, '--spare', lab.image('spare2.img', 8 * MiB)], { env: env2 }).status).toBe(0);
    expect(lab.cli(['import-bad', 'c', '--ddrescue-map', out], { env: env2 }).status).toBe(0);
    const out2 = lab.path('out2.map');
    expect(lab.cli(['export', 'c', '--ddrescue-map', out2], { env: env2 }).status).toBe(0);
    expect(ddrescuelogBad(out2)).toEqual(expected);
    expect(lab.cli(['verify', 'b']).status).toBe(0);
  });
});
