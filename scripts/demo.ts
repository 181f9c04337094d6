/**
 * The demo: pairs two small images, serves them with remapfs, puts ext4 on a
 * loop device over the virtual file, writes files, remaps blocks under them
 * while mounted, checks every sha256 sum, shows the status, and cleans up
 * (also when a step fails). Run with `npm run demo`.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import { checkTree, dropCaches, fileExtents, Lab, requireKernelFeatures, waitFor, writeRandomTree } from '../lib/lab/lab.js';

const MiB = 1024 * 1024;

function step(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

function show(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

async function demo(lab: Lab): Promise<void> {
  step('Making a 256 MiB "failing" main image and a 64 MiB spare image');
  const main = lab.image('main.img', 256 * MiB);
  const spare = lab.image('spare.img', 64 * MiB);
  show(`$ remapfs init demo --main ${main} --spare ${spare}`);
  const r = lab.cli(['init', 'demo', '--main', main, '--spare', spare]);
  if (r.status !== 0) throw new Error(r.stderr);
  show(r.stdout + r.stderr);

  step('Serving the pair over FUSE');
  const mnt = lab.mkdir('mnt');
  const daemon = await lab.startDaemon(mnt);
  show(daemon.output());

  step('Attaching a loop device and making an ext4 file system on it');
  const loop = lab.attachLoop(path.join(mnt, 'demo'));
  show(`$ losetup --direct-io=on --sector-size 4096 -f --show ${mnt}/demo\n${loop}`);
  lab.mkfsExt4(loop);
  const ext = lab.path('ext4');
  lab.mountFs(loop, ext);
  show(`ext4 mounted at ${ext}`);

  step('Writing 48 MiB of random files and recording their sha256 sums');
  const sums = writeRandomTree(ext, 48 * MiB);
  execFileSync('sync');
  show(`${sums.size} files written and synced`);

  step('Remapping the blocks under three files while everything stays mounted');
  const sectors: number[] = [];
  for (const rel of [...sums.keys()].slice(0, 3)) {
    const first = fileExtents(path.join(ext, rel))[0];
    if (first) sectors.push(first.physicalBlock * 8, (first.physicalBlock + 1) * 8);
  }
  show(`$ remapfs remap demo ${sectors.join(' ')}`);
  show(lab.ok(['remap', 'demo', ...sectors.map(String)]));
  await waitFor('the daemon log', () => daemon.output().includes('reason manual'));

  step('Dropping caches and remounting ext4: every file must read back unchanged');
  lab.umountFs(ext);
  dropCaches();
  lab.mountFs(loop, ext);
  const bad = checkTree(ext, sums);
  if (bad.length) throw new Error(`sha256 mismatch in ${bad.join(', ')}`);
  show(`all ${sums.size} sha256 sums match`);

  step('Status');
  show(lab.ok(['status', 'demo']));
}

async function run(): Promise<void> {
  const started = Date.now();
  requireKernelFeatures();
  const lab = new Lab('remapfs-demo-');
  let failed = false;
  try {
    await demo(lab);
  } catch (err) {
    failed = true;
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    step('Cleaning up: unmounting ext4, detaching the loop device, stopping remapfs');
    await lab.cleanup();
  }
  show(`\ndemo ${failed ? 'FAILED' : 'finished'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exitCode = failed ? 1 : 0;
}

void run();
