/**
 * Telling "this sector is bad" from "the source is gone" during an evacuation.
 *
 * A source disk that is unplugged (or the disk under an image file) fails
 * every read from then on. Taken for bad sectors, those failures would mark
 * the rest of the disk bad ('-'), which no resumed run tries again. So a
 * failed read of the source stands only as far as the source is known to be
 * there:
 *
 *  - an errno that says the device is not there (DEVICE_GONE_CODES: ENODEV,
 *    ENXIO, ENOMEDIUM, among the disk errors of lib/block/disk-error.ts) means
 *    gone at once;
 *  - at every failed read, the caller's identity check (no I/O to the device:
 *    the node or file still at its path, the same st_rdev or dev:ino, the same
 *    size; identityCheck) may say gone;
 *  - after GONE_PROBE_AFTER failed reads in a row, places that read before
 *    (in the last read of this run, and in finished areas) and that main
 *    itself holds (not a remapped block's spare copy: heldByMain) are read
 *    again, past any cache, with the run's retries: up to PROBE_SPOTS places
 *    at least PROBE_APART_BYTES apart, so one flaky sector next to bad ones
 *    does not speak for the disk. When every one fails too, the source is
 *    gone; when one reads, the failures were the disk's own.
 *
 * A failed read marks its area at once ('*' or '-'), as before; the marks
 * since the last good read are remembered with the statuses they replaced.
 * A good read (or a probe that reads) makes them final. When the source is
 * gone they are undone, newest first, so a chunk that failed only because the
 * device was gone is '?' (or '+', or '*') again, and SourceGoneError stops
 * the run. A mapfile saved meanwhile (committed()) never holds them.
 *
 * Limits: a source that fails from the first read of a fresh run, with no
 * identity check saying gone and no finished area to probe, cannot be told
 * from a disk that reads nothing; its failures stand. Failures followed by a
 * good read stand even if the device dropped out and came back between.
 */
import { SECTOR_BYTES } from '../format/layout.js';
import type { BlockDevice } from '../block/device.js';
import { isDeviceGone, isDiskError, isPathRefusal } from '../block/disk-error.js';
import { identify } from '../block/identify.js';
import { errnoCodeOf, RemapfsError } from '../errors.js';
import { type Area, AreaMap, type AreaStatus } from './mapfile.js';

/** Failed reads in a row after which a place that read before is read again. */
export const GONE_PROBE_AFTER = 2;
/** Places the probe reads at most, and how far apart; the source is gone only when all of them fail. */
export const PROBE_SPOTS = 3;
export const PROBE_APART_BYTES = 1024 * 1024;
/** Where the probe looks for a sector main holds: every PROBE_STEP bytes, at most PROBE_CANDIDATES places. */
const PROBE_STEP = 4096;
const PROBE_CANDIDATES = 1024;

/** The evacuation stopped because its source went away; the mapfile was saved with what was not judged left untried. */
export class SourceGoneError extends RemapfsError {
  constructor(object: string, why: string, mapfilePath: string) {
    super('evacuate', object, `the source is gone: ${why}`, `what was not read is left non-tried (?) in ${mapfilePath}: run evacuate again when the disk is back`);
    this.name = 'SourceGoneError';
  }
}

export interface SourceProbe {
  /** Why the source's device is no longer there, or undefined; no I/O to the device (see identityCheck). Asked at every failed read. */
  identity?: () => string | undefined;
  /** Reads the source past any cache (default: its readUncached, else its read). */
  readUncached?: (buf: Buffer, byteOffset: number) => void;
  /** Whether main itself holds the sector at `byteOffset` (not the spare, for a remapped block): only such a sector proves main is there. Default: every one. */
  heldByMain?: (byteOffset: number) => boolean;
}

/** Watches the device files behind a source: gone when one no longer resolves, is another node or file, or changed size. */
export function identityCheck(devices: readonly { what: string; path: string }[]): () => string | undefined {
  const keyOf = (p: string): { key: string; size: number } | string => {
    try {
      const id = identify(p);
      return { key: id.key, size: id.sizeBytes };
    } catch (err) {
      if (!isPathRefusal(err)) throw err;
      return err instanceof RemapfsError ? err.causeText : String(err);
    }
  };
  // A device that cannot be identified now (a path the daemon no longer uses, say) is not watched.
  const watched = devices.flatMap((d) => {
    const k = keyOf(d.path);
    return typeof k === 'string' ? [] : [{ ...d, ...k }];
  });
  return () => {
    for (const d of watched) {
      const now = keyOf(d.path);
      if (typeof now === 'string') return `${d.what} ${d.path} is gone (${now})`;
      if (now.key !== d.key) return `${d.what} ${d.path} is another device now`;
      if (now.size !== d.size) return `${d.what} ${d.path} has ${now.size} bytes now, not ${d.size}`;
    }
    return undefined;
  };
}

interface Mark {
  pos: number;
  len: number;
  /** The areas [pos, pos + len) had before. */
  before: Area[];
}

export class SourceWatch {
  private marks: Mark[] = [];
  /** The last read that succeeded. */
  private good: { pos: number; len: number } | undefined;
  private readonly probeBuf = Buffer.alloc(SECTOR_BYTES);

  constructor(
    private readonly map: AreaMap,
    private readonly source: BlockDevice,
    private readonly probe: SourceProbe,
    private readonly retries: number,
    private readonly mapfilePath: string,
  ) {}

  /**
   * Reads the source: true when it did. On a disk error, false, with [pos, pos + buf.length) marked `failStatus`
   * until the source is known to be there (without one: not marked, a retry or smaller reads follow); throws
   * SourceGoneError, those marks undone, when the source is gone. Any other error propagates.
   */
  read(buf: Buffer, pos: number, failStatus?: AreaStatus): boolean {
    try {
      this.source.read(buf, pos);
    } catch (err) {
      if (!isDiskError(err)) throw err;
      if (failStatus) this.failed(err, pos, buf.length, failStatus);
      else this.attemptFailed(err);
      return false;
    }
    this.good = { pos, len: buf.length };
    this.marks = []; // the source is there: the failures before were the disk's own
    return true;
  }

  /** An attempt failed with a disk error (a retry may follow): stops the run when its errno says the device is gone. */
  private attemptFailed(err: unknown): void {
    if (isDeviceGone(err)) this.gone(`reads fail with ${errnoCodeOf(err)} (${describe(err)})`);
  }

  /** A read of [pos, pos + len) failed for good with a disk error: marks it `status` until the source is known to be there. */
  private failed(err: unknown, pos: number, len: number, status: AreaStatus): void {
    this.attemptFailed(err);
    this.marks.push({ pos, len, before: slice(this.map, pos, len) });
    this.map.set(pos, len, status);
    const why = this.probe.identity?.();
    if (why) this.gone(why);
    if (this.marks.length >= GONE_PROBE_AFTER) this.probeKnownGood();
  }

  /** Before the run calls itself finished: failures that no good read followed are checked. */
  settle(): void {
    if (this.marks.length) this.probeKnownGood();
  }

  /** The map with the marks that are not final yet undone (what a mapfile may say). */
  committed(): AreaMap {
    if (!this.marks.length) return this.map;
    const view = new AreaMap(this.map.size, this.map.areas);
    undo(view, this.marks);
    return view;
  }

  /**
   * Up to PROBE_SPOTS sectors that read before (the last good read first, then copied areas) and that main holds,
   * each at least PROBE_APART_BYTES from the others. Bounded: at most PROBE_CANDIDATES places looked at.
   */
  private probeSpots(): number[] {
    const held = this.probe.heldByMain ?? (() => true);
    const ranges = [...(this.good ? [this.good] : []), ...this.map.withStatus('+').map((a) => ({ pos: a.pos, len: a.size }))];
    const spots: number[] = [];
    let tries = 0;
    for (const r of ranges) {
      for (let at = r.pos - (r.pos % SECTOR_BYTES); at < r.pos + r.len; ) {
        if (++tries > PROBE_CANDIDATES) return spots;
        if (spots.some((s) => Math.abs(s - at) < PROBE_APART_BYTES)) {
          at += PROBE_APART_BYTES; // near one already taken: look further on
          continue;
        }
        if (held(at)) {
          spots.push(at);
          if (spots.length >= PROBE_SPOTS) return spots;
          at += PROBE_APART_BYTES;
        } else at += PROBE_STEP;
      }
    }
    return spots;
  }

  private probeKnownGood(): void {
    const spots = this.probeSpots();
    if (!spots.length) {
      this.marks = []; // nothing known to read: the failures stand (see the limits above)
      return;
    }
    const read = this.probe.readUncached ?? (this.source.readUncached ? this.source.readUncached.bind(this.source) : this.source.read.bind(this.source));
    let last: unknown;
    for (const at of spots) {
      const view = this.probeBuf.subarray(0, Math.min(SECTOR_BYTES, this.map.size - at));
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        try {
          read(view, at);
          this.marks = [];
          return;
        } catch (err) {
          if (!isDiskError(err)) throw err;
          this.attemptFailed(err);
          last = err;
        }
      }
    }
    const sectors = spots.map((at) => Math.floor(at / SECTOR_BYTES));
    const which = sectors.length === 1 ? `sector ${sectors[0]}, which read before` : `sectors ${sectors.join(', ')}, which read before`;
    this.gone(`${this.marks.length} reads in a row failed, and then so did ${which} (${describe(last)})`);
  }

  private gone(why: string): never {
    undo(this.map, this.marks);
    this.marks = [];
    throw new SourceGoneError(this.source.name, why, this.mapfilePath);
  }
}

function undo(map: AreaMap, marks: readonly Mark[]): void {
  for (let i = marks.length - 1; i >= 0; i--) for (const a of (marks[i] as Mark).before) map.set(a.pos, a.size, a.status);
}

/** The areas of `map` over [pos, pos + len), cut to it. */
function slice(map: AreaMap, pos: number, len: number): Area[] {
  const end = pos + len;
  return map.areas.filter((a) => a.pos < end && a.pos + a.size > pos).map((a) => ({ pos: Math.max(a.pos, pos), size: Math.min(a.pos + a.size, end) - Math.max(a.pos, pos), status: a.status }));
}

function describe(err: unknown): string {
  return err instanceof RemapfsError ? err.message : err instanceof Error ? err.message : String(err);
}
