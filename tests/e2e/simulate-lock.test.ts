/**
 * `remapfs simulate` writes its image, so it holds it like a pair's device:
 * it refuses an image a daemon serves (the daemon found as one even when
 * started as `remapfs --db X mount`), and a pair whose main it simulates
 * cannot be opened while it runs.
 */
import * as fs from 'fs';
import { labPerTest } from '../helpers/lab-hooks.js';
import { REMAPFS_BIN } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;

describe('simulate holds its image', () => {
  const lab = labPerTest();

  it('refuses the main of a served pair at once, naming the daemon; the main keeps its bytes', async () => {
    const main = lab.image('main.img', 16 * MiB);
    lab.ok(['init', 'p', '--main', main, '--spare', lab.image('spare.img', 4 * MiB)]);
    const mnt = lab.mkdir('mnt');
    // Started with the global option first, as a unit file might: still recognised as a daemon.
    await lab.startProcess([REMAPFS_BIN, '--db', lab.dbPath, 'mount', mnt], mnt, 'remapfs: serving');
    const before = fs.readFileSync(main);
    const t0 = Date.now();
    const r = lab.cli(['simulate', main, lab.mkdir('sim')]);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect({ status: r.status, lines: lines.length }).toEqual({ status: 1, lines: 1 });
    expect(lines[0]).toMatch(/^remapfs: simulate .*main\.img: .*main\.img is in use by pid \d+ \(.*remapfs --db \S+ mount\) \(a daemon holds it/);
    expect(Date.now() - t0).toBeLessThan(10000); // a daemon is not waited for
    expect(fs.readFileSync(main).equals(before)).toBe(true);
  });

  it('while it simulates an image, a pair on that image cannot be opened', async () => {
    const main = lab.image('main.img', 16 * MiB);
    const spare = lab.image('spare.img', 4 * MiB);
    await lab.startSimulator(main, lab.mkdir('sim'));
    const r = lab.cli(['init', 'p', '--main', main, '--spare', spare]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/main\.img is in use by pid \d+ \(.*simulate/);
  });
});
