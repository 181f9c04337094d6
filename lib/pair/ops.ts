/** Operations on a pair shared by the daemon and the CLI. */
import { RemapfsError } from '../errors.js';
import type { PairRecord, Store } from '../store/db.js';
import { SECTOR_BYTES, spareLayout } from '../format/layout.js';
import type { PairRuntime } from './pair.js';
import type { IoFlusherStatus } from '../native/io-flusher.js';
import type { IoCounters, RemapResult } from '../remap/remap-device.js';

/** The distinct blocks holding the given 512-byte sectors, ascending (pure). */
export function sectorsToBlocks(sectors: readonly number[], blockSize: number): number[] {
  const perBlock = blockSize / SECTOR_BYTES;
  return [...new Set(sectors.map((s) => Math.floor(s / perBlock)))].sort((a, b) => a - b);
}

export interface SectorRemap extends RemapResult {
  sector: number;
}

/**
 * Blocks one manual remap may name. Each is copied, flushed and committed on the daemon's event loop (about
 * 15 ms each on a disk), so a bound keeps one request from stalling every other for minutes.
 */
export const MAX_REMAP_BLOCKS = 1024;

/** Manual remap of the blocks holding `sectors`; each block's data is copied to the spare first. */
export function remapSectors(rt: PairRuntime, sectors: readonly number[]): SectorRemap[] {
  const perBlock = rt.record.blockSize / SECTOR_BYTES;
  const totalSectors = rt.device.sizeBytes / SECTOR_BYTES;
  for (const s of sectors) {
    if (!Number.isSafeInteger(s) || s < 0 || s >= totalSectors) {
      throw new RemapfsError('remap', `sector ${s} of ${rt.record.name}`, `outside the device (sectors 0 to ${totalSectors - 1})`);
    }
  }
  // Checked before anything moves: the count, and room on the spare for the blocks not remapped yet.
  const blocks = new Set(sectors.map((s) => Math.floor(s / perBlock)));
  if (blocks.size > MAX_REMAP_BLOCKS) {
    throw new RemapfsError('remap', rt.record.name, `${blocks.size} blocks named; one remap takes at most ${MAX_REMAP_BLOCKS}`, 'split the list, or use "remapfs import-bad" for a long one');
  }
  const needed = [...blocks].filter((b) => rt.device.index.spareBlockOf(b) < 0).length;
  if (needed > rt.device.index.freeSpareBlocks) {
    throw new RemapfsError('remap', rt.record.name, `${needed} blocks need a spare block, but only ${rt.device.index.freeSpareBlocks} are free`, 'nothing was changed; a bigger spare ("remapfs evacuate" to a new pair) makes room');
  }
  const out: SectorRemap[] = [];
  const done = new Map<number, RemapResult>();
  for (const sector of sectors) {
    const block = Math.floor(sector / perBlock);
    let r = done.get(block);
    if (!r) {
      r = rt.device.remapBlock(block, 'manual');
      done.set(block, r);
      out.push({ sector, ...r });
    }
  }
  return out;
}

export const TRACK_ACTIONS = ['start', 'take', 'stop'] as const;
export type TrackAction = (typeof TRACK_ACTIONS)[number];


export interface PairStatus {
  name: string;
  uuid: string;
  main: string;
  spare: string;
  blockSize: number;
  sizeBytes: number;
  remappedBlocks: number;
  pendingBlocks: number;
  retiredSpareBlocks: number;
  spareBlocksUsed: number;
  spareBlocksTotal: number;
  spareExhausted: boolean;
  /** Remapped blocks by reason (manual, write-error, read-error, weak-read, ...). */
  remapsByReason: Record<string, number>;
  mounted: boolean;
  mountpoint?: string;
  /** From a running daemon: 'ok', or why its database can no longer be written (deleted or replaced). */
  database?: string;
  counters?: IoCounters;
  openHandles?: number;
  /** The serving daemon's PR_SET_IO_FLUSHER state (lib/native/io-flusher.ts). */
  ioFlusher?: IoFlusherStatus;
  /** From a running daemon: the engine serving the pair ('native', 'fuse-native') and the native engine's io model. */
  engine?: string;
  negotiated?: { ringWorkers: number; poolThreads: number; ringErrno: number; maxThreads: number; fuseUringEntries?: number; fuseUringEntriesMax?: number };
}

export function pairStatus(store: Store, pair: PairRecord): PairStatus {
  const { counts, byReason } = store.remaps.summary(pair.id);
  const layout = spareLayout(pair.spareBytes, pair.blockSize);
  const used = counts.remapped + counts.label + counts.retired;
  return {
    name: pair.name,
    uuid: pair.uuid,
    main: pair.mainPath,
    spare: pair.sparePath,
    blockSize: pair.blockSize,
    sizeBytes: Math.floor(pair.mainBytes / pair.blockSize) * pair.blockSize,
    remappedBlocks: counts.remapped,
    pendingBlocks: counts.pending,
    retiredSpareBlocks: counts.retired,
    spareBlocksUsed: used,
    spareBlocksTotal: layout.poolBlocks,
    spareExhausted: used >= layout.poolBlocks,
    remapsByReason: byReason,
    mounted: false,
  };
}
