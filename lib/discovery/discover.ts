/**
 * Discovery: finds spares (by their metadata slots) and mains (by their
 * label) among block devices (/sys/class/block) and the files of given
 * directories, and groups them into pairs by UUID. Nothing is written.
 * Listing candidates (gatherCandidates) and pairing (pairUp) are cheap and run
 * on the caller's thread; probing (probe.ts) is the costly part, inline for
 * the CLI's discover(), in a worker for the daemon (background.ts).
 *
 * Spares (chooseSpare, pure): a pair's known spare, when it is present, is
 * kept; another device claiming the same UUID (a copy, or a crafted file with
 * a higher sequence) never replaces it silently. When the known spare is
 * gone, a candidate is taken only if it is the same image file (its recorded
 * identity, store device_ids: a rename, never a copy, which lacks later
 * writes), or if its hardware id is the recorded one, or if neither has one
 * and every candidate holds the same table. Anything else
 * is a conflict that only an explicit `--accept <path>` resolves. For a pair
 * the database does not know, identical copies are one spare (the first path
 * wins) and different tables are a conflict. When several mains
 * carry one pair's label, the one whose hardware id matches the database
 * wins; otherwise the pair is not imported, since serving the wrong disk
 * would hand it another disk's remap table.
 */
import * as fs from 'fs';
import * as path from 'path';
import { type DeviceIdentity, identify, sameStorage } from '../block/file-device.js';
import { fileId } from '../block/identify.js';
import { isPathRefusal } from '../block/disk-error.js';
import { loopBackingFile } from '../block/loop.js';
import type { Store } from '../store/db.js';
import { type MainFound, newProbeStats, probeCandidates, type Probed, type SpareFound } from './probe.js';

export type { MainFound, SpareFound } from './probe.js';

export interface DiscoveredPair {
  uuid: string;
  name: string;
  status: 'complete' | 'spare-only' | 'main-only' | 'conflict';
  main: MainFound | null;
  spare: SpareFound | null;
  /** Other devices that claim the same pair, and why they lost. */
  losers: Array<{ role: 'main' | 'spare'; path: string; why: string }>;
  /** Why a conflict could not be decided. */
  conflict: string | null;
  /** The pair in the database with this UUID, if any. */
  known: { name: string; mainPath: string; sparePath: string; moved: boolean } | null;
}

export interface DiscoveryReport {
  version: 1;
  scanned: { blockDevices: number; files: number; skipped: Array<{ path: string; why: string }> };
  pairs: DiscoveredPair[];
}

/** Block devices to look at: every entry of /sys/class/block that is not an empty loop device. */
export function blockDeviceCandidates(): Array<{ path: string; loopBacking: string | null }> {
  const out: Array<{ path: string; loopBacking: string | null }> = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync('/sys/class/block');
  } catch (err) {
    // No sysfs (a container): no block devices to look at.
    if (!isPathRefusal(err)) throw err;
    return out;
  }
  for (const name of names.sort()) {
    let size = 0;
    try {
      size = Number(fs.readFileSync(`/sys/class/block/${name}/size`, 'utf8').trim());
    } catch (err) {
      // The device left between the listing and the read.
      if (!isPathRefusal(err)) throw err;
      continue;
    }
    if (size === 0 || !fs.existsSync(`/dev/${name}`)) continue;
    out.push({ path: `/dev/${name}`, loopBacking: loopBackingFile(name) ?? null });
  }
  return out;
}

/** Regular files directly inside `dir` (not recursive). */
export function fileCandidates(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    // A watched directory that is missing or unreadable has no candidates.
    if (!isPathRefusal(err)) throw err;
    return [];
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => fs.realpathSync(path.join(dir, e.name)))
    .sort();
}

export interface KnownSpare {
  path: string;
  /** The recorded hardware id of the pair's spare, if it had one. */
  hardwareId: string | null;
  /**
   * Whether a candidate is the very image file that was the pair's spare (its recorded identity, schema.ts
   * device_ids), when one is recorded: false for anything else, a block device that is not a loop device over it too.
   */
  sameFile?: (s: SpareFound) => boolean;
}

export interface SpareChoice {
  spare: SpareFound | null;
  losers: DiscoveredPair['losers'];
  conflict: string | null;
}

/**
 * Which of the spares claiming one pair to use (see the design note). `isKnown`
 * says whether a candidate is the pair's known spare (same storage),
 * `knownPresent` whether the known spare's path still reaches a device, and
 * `knownScanned` whether this run read it (a spare outside the directories
 * scanned was not: it cannot be said to hold nothing).
 */
export function chooseSpare(candidates: readonly SpareFound[], known: KnownSpare | null, isKnown: (s: SpareFound) => boolean, knownPresent: boolean, accept?: readonly string[], knownScanned: () => boolean = () => true): SpareChoice {
  const losers: DiscoveredPair['losers'] = [];
  const pick = (chosen: SpareFound, why: (s: SpareFound) => string): SpareChoice => {
    for (const s of candidates) if (s !== chosen) losers.push({ role: 'spare', path: s.path, why: why(s) });
    return { spare: chosen, losers, conflict: null };
  };
  if (candidates.length === 0) return { spare: null, losers, conflict: null };
  const accepted = accept !== undefined ? candidates.find((s) => accept.includes(s.path)) : undefined;
  if (accepted) return pick(accepted, () => `not the spare accepted with --accept ${accepted.path}`);
  const acceptHint = (s: SpareFound) => `pass --accept ${s.path} to use it`;
  if (known) {
    const mine = candidates.find(isKnown);
    if (mine) return pick(mine, (s) => `claims this pair too (sequence ${s.sequence}), but the pair's spare ${mine.path} is present; ${acceptHint(s)}`);
    if (knownPresent && !knownScanned()) {
      return { spare: null, losers, conflict: `the pair's spare ${known.path} is present but was not scanned, and ${candidates.map((s) => s.path).join(', ')} claim it: scan it too (its directory with --dir, or block devices), or ${acceptHint(candidates[0] as SpareFound)}` };
    }
    if (knownPresent) {
      return { spare: null, losers, conflict: `the pair's spare ${known.path} is present but holds no valid metadata of this pair, and ${candidates.map((s) => s.path).join(', ')} claim it: check it, or ${acceptHint(candidates[0] as SpareFound)}` };
    }
    if (known.sameFile) {
      // An image file at another path is the spare only if it is the same file (moved): a copy lacks later writes.
      const moved = candidates.find(known.sameFile);
      if (moved) return pick(moved, (s) => `another file than the pair's spare, which moved to ${moved.path}; ${acceptHint(s)}`);
      const paths = candidates.map((s) => s.path).join(', ');
      const what = candidates.length === 1 ? 'is another file' : 'are other files';
      return { spare: null, losers, conflict: `the pair's spare ${known.path} is gone, and ${paths} hold its table but ${what} (a copy lacks what was written since it was taken): if one is the spare itself (moved across file systems, or restored), ${acceptHint(candidates[0] as SpareFound)}` };
    }
    if (known.hardwareId) {
      const same = candidates.filter((s) => s.hardwareId === known.hardwareId);
      if (same.length === 1) return pick(same[0] as SpareFound, (s) => `hardware id ${s.hardwareId ?? 'none'} is not the pair's spare's (${known.hardwareId})`);
      return { spare: null, losers, conflict: `the pair's spare (${known.hardwareId}) is gone, and ${candidates.map((s) => `${s.path} (${s.hardwareId ?? 'no hardware id'})`).join(', ')} claim it: ${acceptHint(candidates[0] as SpareFound)}` };
    }
  }
  const first = candidates[0] as SpareFound;
  const differing = candidates.filter((s) => s.tablePrint !== first.tablePrint || s.sequence !== first.sequence);
  if (differing.length === 0) return pick(first, () => 'an identical copy; the first one found wins');
  return {
    spare: null,
    losers,
    conflict: `spares ${candidates.map((s) => `${s.path} (sequence ${s.sequence})`).join(', ')} hold different tables of this pair: ${acceptHint(first)}, after checking which is the real one`,
  };
}

export interface DiscoverOptions {
  blockDevices?: boolean;
  excludeUnder?: readonly string[];
  /** Paths of devices to take despite a conflict (`--accept`, repeatable: a spare, a main, or both). */
  accept?: readonly string[];
  /**
   * By pair UUID, the identity keys (identify().key) of the devices a daemon serves the pair from, held open: a file
   * with one of those keys is that device (its inode cannot be reused while it is open), birth time or not.
   */
  held?: ReadonlyMap<string, readonly string[]>;
}

export interface Candidates {
  paths: string[];
  scanned: DiscoveryReport['scanned'];
}

/** The devices and files to probe (directory listings and sysfs only: cheap). */
export function gatherCandidates(dirs: readonly string[], opts: DiscoverOptions = {}): Candidates {
  const files = dirs.flatMap(fileCandidates);
  const fileSet = new Set(files.map((f) => fs.realpathSync(f)));
  const skipped: Array<{ path: string; why: string }> = [];
  const devices: string[] = [];
  if (opts.blockDevices !== false) {
    for (const c of blockDeviceCandidates()) {
      if (c.loopBacking && fileSet.has(c.loopBacking)) {
        skipped.push({ path: c.path, why: `loop device of ${c.loopBacking}, which is scanned as a file` });
        continue;
      }
      const under = c.loopBacking && opts.excludeUnder?.find((d) => c.loopBacking?.startsWith(d + '/'));
      if (under) {
        // A loop device over a file this very process serves: reading it from here would deadlock.
        skipped.push({ path: c.path, why: `loop device of ${c.loopBacking}, served by this daemon` });
        continue;
      }
      devices.push(c.path);
    }
  }
  return { paths: [...devices, ...files], scanned: { blockDevices: devices.length, files: files.length, skipped } };
}

/** Reads every candidate in full, on this thread (the CLI); the daemon uses discoverInBackground (background.ts). */
export function discover(dirs: readonly string[], store?: Store, opts: DiscoverOptions = {}): DiscoveryReport {
  const candidates = gatherCandidates(dirs, opts);
  return pairUp(probeCandidates(candidates.paths, 'all', undefined, newProbeStats()), candidates.scanned, store, opts);
}

/** Groups what was found into pairs by UUID and decides each pair (the design note); reads only the store. */
export function pairUp(found: readonly Probed[], scanned: DiscoveryReport['scanned'], store: Store | undefined, opts: DiscoverOptions = {}): DiscoveryReport {
  const spares = new Map<string, SpareFound[]>();
  const mains = new Map<string, MainFound[]>();
  for (const f of found) {
    if (f.spare) spares.set(f.spare.uuid, [...(spares.get(f.spare.uuid) ?? []), f.spare]);
    if (f.main) mains.set(f.main.label.uuid, [...(mains.get(f.main.label.uuid) ?? []), f.main]);
  }
  const pairs: DiscoveredPair[] = [];
  let probedIds: DeviceIdentity[] | undefined; // what this run read, identified once when a known spare needs it
  const wasProbed = (id: DeviceIdentity): boolean => (probedIds ??= found.flatMap((f) => identifyOrUndefined(f.path) ?? [])).some((p) => sameStorage(p, id));
  for (const uuid of new Set([...spares.keys(), ...mains.keys()])) {
    const known = store?.pairs.byUuid(uuid);
    const knownSpare = known ? identifyOrUndefined(known.sparePath) : undefined;
    const ids = known ? store?.pairs.fileIds(known.id) : undefined;
    const spareId = ids?.spare;
    const held = opts.held?.get(uuid) ?? [];
    const choice = chooseSpare(
      spares.get(uuid) ?? [],
      known ? { path: known.sparePath, hardwareId: known.spareHwid, ...(spareId !== undefined ? { sameFile: (s: SpareFound) => isRecordedFile(s.path, spareId, held) } : {}) } : null,
      (s) => !!knownSpare && sameStorageOrFalse(s.path, knownSpare),
      !!knownSpare,
      opts.accept,
      () => !knownSpare || wasProbed(knownSpare), // asked only when no candidate is the known spare
    );
    const losers = choice.losers;
    let conflict = choice.conflict;
    const spare = choice.spare;
    let main: MainFound | null = null;
    const mn = mains.get(uuid) ?? [];
    if (mn.length === 1) main = mn[0] ?? null;
    else if (mn.length > 1) {
      const byHw = known?.mainHwid ? mn.filter((m) => m.hardwareId === known.mainHwid) : [];
      if (byHw.length === 1) {
        main = byHw[0] ?? null;
        for (const m of mn) if (m !== main) losers.push({ role: 'main', path: m.path, why: `hardware id ${m.hardwareId ?? 'unknown'} is not the paired disk's (${known?.mainHwid})` });
      } else {
        conflict = `${mn.length} mains carry this pair's label (${mn.map((m) => m.path).join(', ')}): a clone? remove all but the real one`;
      }
    }
    // A main image file at another path than the pair's main: only the same file (moved), never a copy.
    const mainId = ids?.main;
    if (main && known && mainId !== undefined && !opts.accept?.includes(main.path) && !isRecordedFile(main.path, mainId, held)) {
      const knownMain = identifyOrUndefined(known.mainPath);
      if (!knownMain || !sameStorageOrFalse(main.path, knownMain)) {
        const where = knownMain ? 'is still there' : 'is gone';
        const mainConflict = `the pair's main ${known.mainPath} ${where}, and ${main.path} carries its label but is another file (a copy lacks what was written since it was taken): if it is the main itself (moved across file systems, or restored), pass --accept ${main.path} to use it`;
        conflict = conflict ? `${conflict}; ${mainConflict}` : mainConflict;
        main = null;
      }
    }
    if (main && spare && main.label.mainBytes !== spare.mainBytes) {
      conflict = `main ${main.path} has ${main.label.mainBytes} bytes but the spare's metadata says ${spare.mainBytes}`;
    }
    const status: DiscoveredPair['status'] = conflict ? 'conflict' : main && spare ? 'complete' : spare ? 'spare-only' : 'main-only';
    const anySpare = spare ?? (spares.get(uuid) ?? [])[0] ?? null;
    pairs.push({
      uuid,
      name: anySpare?.name ?? main?.label.name ?? '?',
      status,
      main,
      spare,
      losers,
      conflict,
      known: known
        ? { name: known.name, mainPath: known.mainPath, sparePath: known.sparePath, moved: !!(main && spare) && (main.path !== known.mainPath || spare.path !== known.sparePath) }
        : null,
    });
  }
  pairs.sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid));
  return { version: 1, scanned, pairs };
}

/**
 * Whether `p` is the image file whose identity was recorded (store device_ids), directly or as the backing file of
 * a loop device. A file a daemon holds open as the pair's device (`held` keys) is it. Otherwise an identity without a
 * birth time proves nothing (a copy can get the freed inode), nor does a device.
 */
function isRecordedFile(p: string, recorded: string, held: readonly string[]): boolean {
  const file = /^\/dev\/loop\d+$/.test(p) ? loopBackingFile(p) : p;
  if (file === undefined) return false;
  if (held.length) {
    const key = identifyOrUndefined(file)?.key;
    if (key !== undefined && held.includes(key)) return true;
  }
  return !recorded.endsWith(':birth:0') && fileId(file) === recorded;
}

function identifyOrUndefined(p: string): DeviceIdentity | undefined {
  try {
    return identify(p);
  } catch (err) {
    // Nothing at that path now.
    if (!isPathRefusal(err)) throw err;
    return undefined;
  }
}

function sameStorageOrFalse(p: string, known: DeviceIdentity): boolean {
  const id = identifyOrUndefined(p);
  return !!id && sameStorage(id, known);
}
