/**
 * Evacuation: copies a pair's virtual device (remaps resolved) to a new disk
 * or image, the way GNU ddrescue copies a failing disk, keeping its progress
 * in a ddrescue mapfile:
 *
 *   pass 1  copy every non-tried ('?') area in 1 MiB chunks; a chunk that
 *           fails is marked failed ('*') and skipped;
 *   pass 2  read failed areas sector by sector, each with `retries` extra
 *           attempts; a sector that still fails is bad ('-'), the rest '+';
 *   catch-up (through a running daemon) copy again every block written since
 *           the copy began, round after round, until a round finds none;
 *           after MAX_ROUNDS rounds that all found some, it stops with an
 *           error (the mapfile saved), never with a copy it calls finished.
 *
 * A resumed run first compares every finished ('+') chunk with the source
 * and copies again what differs: the pair may have been written between the
 * runs, and the run before may have stopped owing a catch-up. Nothing in the
 * mapfile can say that, so the target is what is checked.
 *
 * The mapfile is saved every 2 seconds and at the end (atomically), after the
 * data it describes was written, so an interrupted evacuation resumes where
 * the mapfile says and gives the same result. Bad sectors are not written to
 * the target (as ddrescue leaves them). Only disk errors (isDiskError) mark an
 * area failed or bad; any other error stops the evacuation.
 *
 * A source that went away (unplugged) is not a disk full of bad sectors
 * (source-gone.ts, SourceWatch): the run stops with SourceGoneError, and the
 * areas that failed only because the device was gone keep the status they
 * had ('?' untried), in the mapfile saved on the way out, so a run after the
 * disk is back goes on from there.
 *
 * The catch-up's tracker is, through a daemon, its 'track' operation: the
 * daemon stacks EvacTracking (lib/remap/evac-tracking.ts) over the served
 * file between start and stop.
 */
import * as fs from 'fs';
import { writeFileAtomic } from '../fsutil/write-atomic.js';
import { readTextBounded } from '../fsutil/read-bounded.js';
import { SECTOR_BYTES } from '../format/layout.js';
import type { BlockDevice } from '../block/device.js';
import { isDiskError } from '../block/disk-error.js';
import { AreaMap, type AreaStatus, formatMapfile, parseMapfile } from './mapfile.js';
import { type SourceProbe, SourceGoneError, SourceWatch } from './source-gone.js';
import { errnoCodeOf, RemapfsError } from '../errors.js';

const CHUNK_BYTES = 1024 * 1024;
const SAVE_EVERY_MS = 2000;
/** Catch-up rounds before an evacuation under writes that never stop gives up (with an error). */
export const MAX_ROUNDS = 20;

export interface DirtyTracker {
  start(): Promise<void>;
  /** Blocks written since the last call. */
  take(): Promise<number[]>;
  stop(): Promise<void>;
  blockSize: number;
}

export interface EvacuateOptions {
  source: BlockDevice;
  target: BlockDevice;
  mapfilePath: string;
  restart: boolean;
  retries: number;
  tracker?: DirtyTracker;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  now?: () => number;
  /** How to tell that the source went away (source-gone.ts); without it, errnos and probe reads of the source alone. */
  probe?: SourceProbe;
}

export interface EvacuateResult {
  sizeBytes: number;
  copiedBytes: number;
  /** Resumed: bytes of finished chunks that differed from the source and were copied again. */
  refreshedBytes: number;
  badSectors: number[];
  catchUpRounds: number;
  recopiedBlocks: number;
  resumed: boolean;
}

export function saveMapfile(file: string, map: AreaMap, status: string, pass: number, pos: number): void {
  writeFileAtomic(file, formatMapfile({ currentPos: pos, currentStatus: status, currentPass: pass, areas: map.areas }, 'remapfs evacuate'));
}

/** The mapfile of an interrupted evacuation; one that is not a mapfile of this device is refused with one printable line. */
export function loadAreaMap(file: string, size: number): AreaMap {
  try {
    return new AreaMap(size, parseMapfile(readTextBounded(file, 'read mapfile')).areas);
  } catch (err) {
    if (err instanceof RemapfsError) throw err;
    if (errnoCodeOf(err)) throw new RemapfsError('read mapfile', file, err);
    throw new RemapfsError('read mapfile', file, err instanceof Error ? err.message : String(err), 'is it the mapfile of this evacuation? name another file with --mapfile, or move this one aside to start over');
  }
}

export async function evacuate(o: EvacuateOptions): Promise<EvacuateResult> {
  const size = o.source.sizeBytes;
  const now = o.now ?? Date.now;
  const resumed = !o.restart && fs.existsSync(o.mapfilePath);
  const map = resumed ? loadAreaMap(o.mapfilePath, size) : new AreaMap(size);
  let lastSave = now();
  let pass = 1;
  let pos = 0;
  // Failed reads are the disk's only while the source is known to be there; the mapfile never holds the others.
  const watch = new SourceWatch(map, o.source, o.probe ?? {}, o.retries, o.mapfilePath);
  let phase = resumed ? '+' : '?'; // the current_status of a mapfile saved when the source goes away
  const save = (status: string, force = false) => {
    phase = status;
    if (!force && now() - lastSave < SAVE_EVERY_MS) return;
    o.target.flush();
    saveMapfile(o.mapfilePath, watch.committed(), status, pass, pos);
    lastSave = now();
  };
  const progress = () => o.onProgress?.(map.bytes('+', '-'), size);
  const buf = Buffer.alloc(CHUNK_BYTES);
  let copied = 0;
  if (o.tracker) await o.tracker.start();
  let refreshed = 0;
  try {
    // Resumed: finished chunks that no longer equal the source are copied again (the design note).
    if (resumed) {
      const theirs = Buffer.alloc(CHUNK_BYTES);
      for (const { off, len } of chunksOf(map, '+')) {
        const view = buf.subarray(0, len);
        pos = off;
        if (!watch.read(view, off, '*')) continue; // pass 2 reads it sector by sector
        let same = false;
        try {
          o.target.read(theirs.subarray(0, len), off);
          same = theirs.subarray(0, len).equals(view);
        } catch (err) {
          if (!isDiskError(err)) throw err;
        }
        if (!same) {
          o.target.write(view, off);
          refreshed += len;
        }
        save('+');
      }
    }
    // Pass 1: copy.
    phase = '?';
    for (const { off, len } of chunksOf(map, '?')) {
      const view = buf.subarray(0, len);
      pos = off;
      if (watch.read(view, off, '*')) {
        try {
          o.target.write(view, off);
          map.set(off, len, '+');
          copied += len;
        } catch (err) {
          if (!isDiskError(err)) throw err;
          map.set(off, len, '*');
        }
      }
      progress();
      save('?');
    }
    // Pass 2: sector by sector through what failed.
    pass = 2;
    phase = '/';
    const sector = buf.subarray(0, SECTOR_BYTES);
    for (const area of map.withStatus('*', '/')) {
      for (let off = area.pos; off < area.pos + area.size; off += SECTOR_BYTES) {
        pos = off;
        const len = Math.min(SECTOR_BYTES, area.pos + area.size - off);
        const view = sector.subarray(0, len);
        let ok = false;
        // The last attempt that fails marks the sector bad.
        for (let attempt = 0; attempt <= o.retries && !ok; attempt++) ok = watch.read(view, off, attempt === o.retries ? '-' : undefined);
        if (ok) {
          o.target.write(view, off);
          map.set(off, len, '+');
          copied += len;
        }
        progress();
        save('/');
      }
    }
    // Catch-up: blocks written while we copied.
    let rounds = 0;
    let recopied = 0;
    phase = '+';
    if (o.tracker) {
      const bs = o.tracker.blockSize;
      const block = Buffer.alloc(bs);
      for (; ; rounds++) {
        const dirty = await o.tracker.take();
        if (dirty.length === 0) break;
        if (rounds === MAX_ROUNDS) {
          pos = size;
          save('+', true);
          throw new RemapfsError('evacuate', o.mapfilePath, `writes did not stop: ${dirty.length} blocks written during the last of ${MAX_ROUNDS} catch-up rounds are not on the target`, 'run evacuate again when the pair is quieter (it resumes and checks what it copied), or stop its writers');
        }
        for (const b of dirty) {
          copyAgain(o.target, map, watch, block, b * bs);
          recopied++;
        }
      }
    }
    watch.settle(); // failures at the very end: a source gone then stops here too
    pos = size;
    save('+', true);
    const badSectors: number[] = [];
    for (const a of map.withStatus('-')) for (let s = a.pos / SECTOR_BYTES; s < (a.pos + a.size) / SECTOR_BYTES; s++) badSectors.push(s);
    return { sizeBytes: size, copiedBytes: copied, refreshedBytes: refreshed, badSectors, catchUpRounds: rounds, recopiedBlocks: recopied, resumed };
  } catch (err) {
    // The source went away: the map has lost the failures it caused; saved so a later run goes on from here.
    if (err instanceof SourceGoneError) save(phase, true);
    throw err;
  } finally {
    if (o.tracker) await o.tracker.stop().catch(() => undefined);
  }
}

/** Copies a block written during the copy again: whole, or sector by sector where that fails ('-' for a sector that does not read). */
function copyAgain(target: BlockDevice, map: AreaMap, watch: SourceWatch, block: Buffer, off: number): void {
  if (watch.read(block, off)) {
    try {
      target.write(block, off);
      map.set(off, block.length, '+');
      return;
    } catch (err) {
      if (!isDiskError(err)) throw err;
    }
  }
  for (let s = 0; s < block.length; s += SECTOR_BYTES) {
    const view = block.subarray(s, s + SECTOR_BYTES);
    if (!watch.read(view, off + s, '-')) continue;
    try {
      target.write(view, off + s);
      map.set(off + s, SECTOR_BYTES, '+');
    } catch (err) {
      if (!isDiskError(err)) throw err;
      map.set(off + s, SECTOR_BYTES, '-');
    }
  }
}

/** The chunks of the areas that have `status` now: pieces of an area, none across a CHUNK_BYTES boundary. */
function* chunksOf(map: AreaMap, status: AreaStatus): Generator<{ off: number; len: number }> {
  for (const area of map.withStatus(status)) {
    for (let off = area.pos; off < area.pos + area.size; ) {
      const len = Math.min(CHUNK_BYTES - (off % CHUNK_BYTES), area.pos + area.size - off);
      yield { off, len };
      off += len;
    }
  }
}

/** Compares the finished ('+') areas of source and target; returns the byte offsets of differing chunks. */
export function verifyCopy(source: BlockDevice, target: BlockDevice, map: AreaMap): number[] {
  const a = Buffer.alloc(CHUNK_BYTES);
  const b = Buffer.alloc(CHUNK_BYTES);
  const bad: number[] = [];
  for (const area of map.withStatus('+')) {
    for (let off = area.pos; off < area.pos + area.size; off += CHUNK_BYTES) {
      const len = Math.min(CHUNK_BYTES, area.pos + area.size - off);
      source.read(a.subarray(0, len), off);
      target.read(b.subarray(0, len), off);
      if (!a.subarray(0, len).equals(b.subarray(0, len))) bad.push(off);
    }
  }
  return bad;
}
