/**
 * Issue 13, "Unbounded work": a spare with a table of 1,000,000 entries shows
 * up in a watched directory while the daemon serves another pair. The table is
 * read in the discovery worker; the daemon's main thread keeps answering the
 * served pair's reads (with the right data) while it is read, and the
 * unchanged spare is not read again on the rescans that follow (the daemon
 * logs, with REMAPFS_DEBUG, every run and the candidates whose tables it read).
 * When the pair is imported, its database rows are written in chunks with the
 * event loop turning between them: with fuse-native, the other pair's reads
 * are answered on the main thread between the chunks (the daemon logs how
 * many), which no single-transaction import allows.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { growTable } from '../../lib/lab/grow-table.js';
import { waitFor } from '../../lib/lab/lab.js';
import { labPerTest } from '../helpers/lab-hooks.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ENTRIES = 1_000_000;
const RUN = /remapfs: discovery run (\d+): .*?, (\d+) slot table\(s\) read \((\d+) entries\) (in the worker|on the serving thread); table reads so far (\d+); (\d+) request\(s\) served meanwhile(?: \(tables of ([^)]*)\))?$/gm;

interface Run {
  run: number;
  reads: number;
  entries: number;
  where: string;
  total: number;
  served: number;
  /** Candidates whose tables the run read. */
  paths: string[];
}

function runs(output: string): Run[] {
  return [...output.matchAll(RUN)].map((m) => ({ run: Number(m[1]), reads: Number(m[2]), entries: Number(m[3]), where: m[4] as string, total: Number(m[5]), served: Number(m[6]), paths: m[7] ? m[7].split(', ') : [] }));
}

/** Writes 1 MiB of random bytes at the start of `file` and fsyncs it; returns them. */
function writePattern(file: string): Buffer {
  const pattern = crypto.randomBytes(MiB);
  const wfd = fs.openSync(file, 'r+');
  fs.writeSync(wfd, pattern, 0, pattern.length, 0);
  fs.fsyncSync(wfd);
  fs.closeSync(wfd);
  return pattern;
}

/** Reads `file` 4 KiB at a time with O_DIRECT (each read a request to the daemon) until stopped, counting reads and mismatches with `pattern`. */
function continuousReader(file: string, pattern: Buffer): { stop: () => Promise<void>; done: () => number; wrong: () => number } {
  let reading = true;
  let done = 0;
  let wrong = 0;
  const rfd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  const loop = (async () => {
    const buf = Buffer.alloc(4096);
    for (let k = 0; reading; k = (k + 1) % (pattern.length / 4096)) {
      await new Promise<void>((resolve, reject) => fs.read(rfd, buf, 0, 4096, k * 4096, (err) => (err ? reject(err) : resolve())));
      if (!buf.equals(pattern.subarray(k * 4096, (k + 1) * 4096))) wrong++;
      done++;
    }
  })();
  return {
    stop: async () => {
      reading = false;
      await loop.catch(() => undefined);
      fs.closeSync(rfd);
    },
    done: () => done,
    wrong: () => wrong,
  };
}

describe('bounded discovery in the daemon', () => {
  const lab = labPerTest();

  it('a huge table in a watched directory is read in the worker while the served pair keeps answering, and not read again while unchanged', async () => {
    lab.ok(['init', 'small', '--main', lab.image('small-main.img', 64 * MiB), '--spare', lab.image('small-spare.img', 16 * MiB)]);
    // A pair of this database whose main is gone: its spare's table could matter, so it is read in full.
    const bigMain = lab.image('big-main.img', 4 * GiB);
    const bigSpare = lab.image('big-spare.img', 4 * GiB);
    lab.ok(['init', 'big', '--main', bigMain, '--spare', bigSpare]);
    const tableEntries = growTable(bigSpare, ENTRIES);
    fs.rmSync(bigMain);

    const watch = lab.mkdir('watch');
    const mnt = lab.mkdir('mnt');
    // fuse-native: every request of the served pair is answered on the main thread (the native engine's threads would
    // answer reads even with the main thread blocked), so a request served proves the main thread was free.
    const d = await lab.startDaemon(mnt, ['--watch', watch, '--engine', 'fuse-native'], { ...lab.env(), REMAPFS_DEBUG: '1' });
    const file = path.join(mnt, 'small');
    const pattern = writePattern(file);
    await waitFor('a first rescan', () => runs(d.output()).length > 0, 30000);
    expect(runs(d.output()).filter((r) => r.paths.some((p) => p.startsWith(watch)))).toEqual([]);

    // Read the served pair continuously (O_DIRECT: every read is a request to the daemon) while the spare arrives.
    const reader = continuousReader(file, pattern);
    try {
      const arrived = path.join(watch, 'big-spare.img');
      fs.renameSync(bigSpare, arrived);
      // (Block devices of other processes on this machine are candidates too; only this spare is looked at.)
      await waitFor('the table to be read', () => runs(d.output()).some((r) => r.paths.includes(arrived)), 120000);
      const first = runs(d.output()).find((r) => r.paths.includes(arrived)) as Run;
      expect(first.where).toBe('in the worker');
      expect(first.entries).toBeGreaterThanOrEqual(tableEntries);
      // The main thread served the pair's reads while the worker read the table.
      expect(first.served).toBeGreaterThan(0);
      // Two more rescans with the spare unchanged: the count of table reads stays where it was.
      await waitFor('two more rescans', () => runs(d.output()).filter((r) => r.run > first.run).length >= 2, 60000);
      const later = runs(d.output()).filter((r) => r.run > first.run);
      for (const r of later) expect(r.paths).not.toContain(arrived);
      process.stdout.write(`bounded discovery: ${first.reads} slot copies (${first.entries} entries) read in the worker while ${first.served} request(s) were served; ${later.length} later rescan(s) did not read it again\n`);
    } finally {
      await reader.stop();
    }
    const { done, wrong } = reader;
    expect(done()).toBeGreaterThan(0);
    expect(wrong()).toBe(0);
    expect(d.output()).toMatch(/waiting for pair big/);
  });

  it('a pair with a huge table that arrives in a watched directory is imported with its table read in the worker and its rows written in chunks, while the other pair keeps being served', async () => {
    lab.ok(['init', 'small', '--main', lab.image('small-main.img', 64 * MiB), '--spare', lab.image('small-spare.img', 16 * MiB)]);
    // A pair of another database, with 1,000,000 entries, made outside the watched directory.
    const src = lab.mkdir('src');
    const bigMain = lab.image('big-main.img', 4 * GiB, src);
    const bigSpare = lab.image('big-spare.img', 4 * GiB, src);
    expect(lab.cli(['init', 'big', '--main', bigMain, '--spare', bigSpare], { env: { ...lab.env(), REMAPFS_DB: lab.path('other.db') } }).status).toBe(0);
    const tableEntries = growTable(bigSpare, ENTRIES);

    const watch = lab.mkdir('watch');
    const mnt = lab.mkdir('mnt');
    // fuse-native: every request of the served pair is answered on the main thread, so a request served is one
    // the main thread answered (the native engine would serve these reads in its own threads whatever it did).
    const d = await lab.startDaemon(mnt, ['--watch', watch, '--engine', 'fuse-native'], { ...lab.env(), REMAPFS_DEBUG: '1' });
    const file = path.join(mnt, 'small');
    const pattern = writePattern(file);
    await waitFor('a first rescan', () => runs(d.output()).length > 0, 30000);

    const reader = continuousReader(file, pattern);
    try {
      fs.renameSync(bigMain, path.join(watch, 'big-main.img'));
      fs.renameSync(bigSpare, path.join(watch, 'big-spare.img'));
      await waitFor('the pair to be attached', () => /remapfs: big: attached/.test(d.output()), 300000);
    } finally {
      await reader.stop();
    }
    const { done, wrong } = reader;
    const m = /remapfs: hot-plug: the table of (\S+) was read (in the worker|on the serving thread) \((\d+) entries\); (\d+) request\(s\) served meanwhile$/m.exec(d.output());
    expect(m?.[1]).toBe(path.join(fs.realpathSync(watch), 'big-spare.img'));
    expect(m?.[2]).toBe('in the worker');
    expect(Number(m?.[3])).toBe(tableEntries);
    // The main thread answered the other pair's reads while the worker read and checked the table.
    const served = Number(m?.[4]);
    expect(served).toBeGreaterThan(0);
    expect(done()).toBeGreaterThan(0);
    expect(wrong()).toBe(0);
    // The database import ran in steps, and the main thread answered the other pair's reads between its row chunks.
    const imp = /remapfs: hot-plug: big: the database import ran on the serving thread in (\d+) step\(s\), the longest (\d+) ms, (\d+) ms in all, over (\d+) ms; (\d+) request\(s\) served between its (\d+) row chunk\(s\)$/m.exec(d.output());
    expect(imp).not.toBeNull();
    const servedBetweenChunks = Number(imp?.[5]);
    expect(servedBetweenChunks).toBeGreaterThan(0);
    expect(Number(imp?.[6])).toBeGreaterThan(1);
    const open = /remapfs: hot-plug: big: opened in (\d+) step\(s\), the longest (\d+) ms, (\d+) ms in all, over \d+ ms; added to the mount \(its routes published\) in (\d+) ms$/m.exec(d.output());
    expect(open).not.toBeNull();
    // The open used the table as read (nothing rewritten), and the database and all five slots agree.
    expect(d.output()).not.toMatch(/remapfs: big: (database restored|slot \d)/);
    expect(lab.ok(['verify', 'big'])).toMatch(/pair big \(uuid [0-9a-f-]+\): consistent, sequence \d+/);
    process.stdout.write(
      `hot-plug import: ${tableEntries} entries read in the worker while ${served} request(s) of the other pair were served on the main thread; ` +
        `the database import took ${imp?.[1]} step(s) on the main thread (the longest ${imp?.[2]} ms, ${imp?.[3]} ms in all, over ${imp?.[4]} ms), ${servedBetweenChunks} request(s) served between its ${imp?.[6]} row chunks; ` +
        `open ${open?.[1]} step(s) (the longest ${open?.[2]} ms, ${open?.[3]} ms in all), routes published ${open?.[4]} ms\n` +
        `${/remapfs: hot-plug: big: import steps by phase: .*$/m.exec(d.output())?.[0] ?? ''}\n`,
    );
  });
});
