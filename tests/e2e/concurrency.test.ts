/**
 * I/O to blocks that are being remapped stays consistent: while one process
 * rewrites blocks and another reads them (both with O_DIRECT, so every request
 * reaches the daemon), the daemon remaps those very blocks.
 * No read may see a block that is half one generation and half another, and
 * no write may be lost between a remap's copy and its switch.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { dropCaches } from '../../lib/lab/lab.js';
import { blockContent } from '../fixtures/writer.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const MiB = 1024 * 1024;
const BLOCKS = 256;

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve(HERE_DIR, '../fixtures/churn.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`churn ${args[0]} exited ${code}: ${err}`))));
  });
}

describe('concurrency', () => {
  const lab = labPerTest();

  it('remaps blocks under concurrent readers and writers without torn reads or lost writes', async () => {
    const main = lab.image('main.img', 16 * MiB);
    const spare = lab.image('spare.img', 8 * MiB);
    lab.ok(['init', 'cc', '--main', main, '--spare', spare]);
    const mnt = lab.mkdir('mnt');
    await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'cc');
    const fd = fs.openSync(vfile, 'r+');
    for (let b = 0; b < BLOCKS; b++) fs.writeSync(fd, blockContent(b, 0), 0, 4096, b * 4096);
    fs.fsyncSync(fd);
    fs.closeSync(fd);

    const writer = run(['write', vfile, String(BLOCKS), '8']);
    const reader = run(['read', vfile, String(BLOCKS), '8']);
    // Remap every block, 8 at a time, while both run.
    for (let first = 0; first < BLOCKS; first += 8) {
      const sectors = Array.from({ length: 8 }, (_, i) => String((first + i) * 8 + ((first + i) % 8)));
      await new Promise((r) => setTimeout(r, 20));
      const r = lab.cli(['remap', 'cc', ...sectors]);
      expect(r.status).toBe(0);
    }
    const lastGeneration = Number(await writer);
    const [reads, torn] = (await reader).split(' ').map(Number);
    expect(reads).toBeGreaterThan(100);
    expect(torn).toBe(0);
    expect(lastGeneration).toBeGreaterThan(1);

    const status = JSON.parse(lab.ok(['status', 'cc', '--json'])) as { remappedBlocks: number };
    expect(status.remappedBlocks).toBe(BLOCKS);
    dropCaches();
    const rfd = fs.openSync(vfile, 'r');
    const buf = Buffer.alloc(4096);
    try {
      for (let b = 0; b < BLOCKS; b++) {
        fs.readSync(rfd, buf, 0, 4096, b * 4096);
        expect(buf.equals(blockContent(b, lastGeneration))).toBe(true);
      }
    } finally {
      fs.closeSync(rfd);
    }
  });
});
