/**
 * The images the bench measures: where they live (a disk directory by default, or a private tmpfs), pairs
 * filled with data, and remap entries injected straight into a pair's database and slots.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Lab } from '../../lib/lab/lab.js';
import { identityOf, reconcile } from '../../lib/meta/reconcile.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { FileDevice } from '../../lib/block/file-device.js';
import { spareLayout, type SpareLayout } from '../../lib/format/layout.js';
import { Store } from '../../lib/store/db.js';
import { GiB, type ImagePlace } from './config.js';
import { diskOf, type DiskInfo } from './system.js';

export interface Images {
  dir: string;
  /** tmpfs: the images are the page cache, and dropping caches does not touch them. */
  inMemory: boolean;
  disk: DiskInfo;
  /** Where the images are, for the report. */
  description: string;
}

function privateTmpfs(lab: Lab): string {
  const dir = lab.mkdir('images');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.floor(os.totalmem() / 2)}`, 'tmpfs', dir]);
  lab.onCleanup(`unmount the tmpfs at ${dir}`, () => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  });
  return dir;
}

/** The directory for the images: a fresh directory under the chosen one, or a private tmpfs. */
export function imageDir(lab: Lab, place: ImagePlace): Images {
  if (place.kind === 'tmpfs') {
    const dir = privateTmpfs(lab);
    return { dir, inMemory: true, disk: diskOf(dir), description: 'a private tmpfs (memory)' };
  }
  const dir = fs.mkdtempSync(path.join(place.path, 'remapfs-bench-'));
  lab.onCleanup(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  const disk = diskOf(dir);
  const inMemory = disk.fsType === 'tmpfs' || disk.fsType === 'ramfs';
  const what = inMemory ? `${disk.fsType}, memory, not a disk` : `${disk.fsType} on ${disk.source}`;
  return { dir, inMemory, disk, description: `${place.path} (${what})` };
}

export function fill(file: string, bytes: number): void {
  execFileSync('fio', ['--name=fill', `--filename=${file}`, '--rw=write', '--bs=1M', `--size=${bytes}`, '--ioengine=psync', '--output-format=terse'], { stdio: 'ignore' });
}

export interface PairFiles {
  name: string;
  db: string;
  main: string;
  spare: string;
}

/**
 * A main image with data in its first GiB and a spare, paired as `name`. A spare of up to 1 GiB is filled too:
 * the spare blocks of remaps injected later must not be holes, or the first write to each would allocate
 * file-system blocks, which a real remap (it writes the block's data first) never leaves to the user's writes.
 */
export function filledPair(lab: Lab, dir: string, name: string, mainBytes: number, spareBytes: number, db = lab.dbPath): PairFiles {
  const main = lab.image(`${name}-main.img`, mainBytes, dir);
  const spare = lab.image(`${name}-spare.img`, spareBytes, dir);
  fill(main, Math.min(mainBytes, GiB));
  if (spareBytes <= GiB) fill(spare, spareBytes);
  lab.ok(['--db', db, 'init', name, '--main', main, '--spare', spare]);
  return { name, db, main, spare };
}

/** `count` free spare blocks of the pool, in order, skipping the ones already taken. */
function freeSpareBlocks(layout: SpareLayout, taken: ReadonlySet<number>, count: number): number[] {
  const out: number[] = [];
  for (const range of layout.pool) {
    for (let block = range.startBlock; block < range.endBlock && out.length < count; block++) if (!taken.has(block)) out.push(block);
    if (out.length === count) return out;
  }
  throw new Error('spare pool too small for the injected remaps');
}

/** Adds remap entries straight into a pair's database and slots (the data path does not care what the spare blocks hold). */
export function injectRemaps(dbPath: string, name: string, mainBlocks: readonly number[]): void {
  const store = Store.open(dbPath, { create: false });
  const pair = store.pairs.get(name);
  if (!pair) throw new Error(`no pair ${name}`);
  const spare = FileDevice.open(pair.sparePath, { mode: 'buffered' });
  try {
    const layout = spareLayout(pair.spareBytes, pair.blockSize);
    const slots = new SlotSet(spare, layout);
    const current = reconcile(store, pair, slots, { write: true }).state;
    const spareBlocks = freeSpareBlocks(layout, new Set(current.entries.map((e) => e.spareBlock)), mainBlocks.length);
    const now = Date.now();
    const added: SlotEntry[] = mainBlocks.map((mainBlock, i) => ({ mainBlock, spareBlock: spareBlocks[i] as number, createdAt: now, reason: 'manual', state: 'remapped', lostSectors: 0 }));
    const seq = current.sequence + 1;
    const state = new MetaState(identityOf(pair), layout, seq, [...current.entries, ...added]);
    store.transaction(() => {
      store.remaps.putMany(
        pair.id,
        added.map((e) => ({ mainBlock: e.mainBlock, spareBlock: e.spareBlock, reason: 'manual' as const, state: 'remapped' as const, lostSectors: 0, createdAt: e.createdAt })),
      );
      store.pairs.setMetaSeq(pair.id, seq);
    });
    if (slots.writeAll(state).length) throw new Error('could not write the slots');
  } finally {
    spare.close();
    store.close();
  }
}

/** 1% of the 4 KiB blocks of the measured GiB, one in every 100, at scattered places within each 100. */
export const ONE_PERCENT_SCATTERED = Array.from({ length: Math.floor(GiB / 4096 / 100) }, (_, i) => i * 100 + ((i * 37) % 100));
