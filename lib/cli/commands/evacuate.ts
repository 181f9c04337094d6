import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { FileDevice, identify } from '../../block/file-device.js';
import { DeviceLock } from '../../block/device-lock.js';
import type { BlockDevice } from '../../block/device.js';
import { socketTransport } from '../../daemon/control.js';
import { pairOps } from '../../pair/operations.js';
import { RemapfsError, UsageError } from '../../errors.js';
import { createFileExclusive } from '../../fsutil/write-atomic.js';
import { openPair, type PairRuntime } from '../../pair/pair.js';
import type { PairRecord, Store } from '../../store/db.js';
import { type DirtyTracker, evacuate, type EvacuateResult, loadAreaMap, verifyCopy } from '../../rescue/evacuate.js';
import { identityCheck, type SourceProbe, SourceGoneError } from '../../rescue/source-gone.js';
import { CLI_LOCK_WAIT_MS, liveDaemon, printJson, requirePair, withStore } from '../common.js';
import { countOption } from '../options.js';
import { refuseProtectedOutput } from '../output-guard.js';
import { Progress } from '../progress.js';
import { reportError } from '../report.js';

/** The exit status of an evacuation whose source went away (docs/cli.md): run it again when the disk is back. */
export const EXIT_SOURCE_GONE = 3;

interface Args {
  db?: string;
  name: string;
  to: string;
  mapfile?: string;
  retries: number;
  verify: boolean;
  restart: boolean;
  json: boolean;
}

export const evacuateCommand: CommandModule<object, Args> = {
  command: 'evacuate <name>',
  describe: 'Copy the whole pair (remaps resolved) to a new disk or image, ddrescue-style, resumable, with a mapfile of what could not be read',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('to', { type: 'string', demandOption: true, describe: 'target block device or image file (created if missing)' })
      .option('mapfile', { type: 'string', describe: 'GNU ddrescue mapfile (default for an image file: <to>.map; required for a block device); an existing one is resumed' })
      .option('retries', countOption('retries', 'extra attempts per unreadable sector', 2))
      .option('verify', { type: 'boolean', default: false, describe: 'compare everything copied with the source afterwards' })
      .option('restart', { type: 'boolean', default: false, describe: 'ignore an existing mapfile and start over' })
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (argv) => {
    const retries = argv.retries;
    await withStore(argv, false, async (store) => {
      const pair = requirePair(store, argv.name);
      const size = Math.floor(pair.mainBytes / pair.blockSize) * pair.blockSize;
      const to = path.resolve(argv.to);
      if (argv.mapfile === undefined && isBlockDevice(to)) {
        throw new UsageError(`--to ${to} is a block device: name the mapfile with --mapfile (it goes next to the target only for image files)`);
      }
      const mapfilePath = path.resolve(argv.mapfile ?? `${to}.map`);
      // Before anything is opened or written: neither output may be a pair's device, the database, or the other output.
      refuseProtectedOutput(store, 'evacuate', to);
      refuseProtectedOutput(store, 'evacuate', mapfilePath, [{ path: to, what: 'the evacuation target (--to)' }]);
      // A mapfile to resume is read before anything is created: one that is not a mapfile of this device leaves no target behind.
      if (!argv.restart && fs.existsSync(mapfilePath)) loadAreaMap(mapfilePath, size);
      const daemon = liveDaemon(store);
      let source: BlockDevice;
      let rt: PairRuntime | undefined;
      let tracker: DirtyTracker | undefined;
      // The source first: a pair that cannot be read leaves no target behind.
      if (daemon) {
        // Through the daemon, so the copy sees what users write; O_DIRECT: no page cache in between.
        source = FileDevice.open(path.join(daemon.mountpoint, pair.name), { mode: 'direct', readOnly: true });
        const ops = pairOps(socketTransport(daemon.socket, pair.name));
        let token = 0; // names this run's tracking (pair-service.ts)
        tracker = {
          blockSize: pair.blockSize,
          start: async () => void ([token = 0] = await ops.track({ action: 'start', token: 0 })),
          take: () => ops.track({ action: 'take', token }),
          stop: async () => void (await ops.track({ action: 'stop', token })),
        };
      } else {
        rt = openPair(store, pair, { lockWaitMs: CLI_LOCK_WAIT_MS });
        source = rt.device;
      }
      // The target is written: hold it like a pair's device, so nothing else writes it meanwhile.
      let created = false;
      let targetLock: DeviceLock | undefined;
      let target: FileDevice | undefined;
      try {
        // A new image is 0600 (it holds the pair's data); an existing target keeps its mode.
        created = createFileExclusive(to, { op: 'evacuate' });
        if (created) fs.truncateSync(to, size);
        const tid = identify(to);
        if (tid.sizeBytes < size) {
          if (tid.isBlockDevice) throw new RemapfsError('evacuate', to, `has ${tid.sizeBytes} bytes, the pair needs ${size}`, 'use a bigger disk');
          fs.truncateSync(tid.realPath, size);
        }
        targetLock = DeviceLock.acquire([tid.realPath], { op: 'evacuate', object: to, waitMs: 0 });
        target = FileDevice.open(to);
      } catch (err) {
        targetLock?.release();
        if (rt) rt.close();
        else source.close();
        // Only a file this run created, before any data went into it.
        if (created) fs.rmSync(to, { force: true });
        throw err;
      }
      try {
        const progress = new Progress(`evacuate ${pair.name}`, size, 1);
        let r: EvacuateResult;
        try {
          r = await evacuate({ source, target, mapfilePath, restart: argv.restart, retries, ...(tracker ? { tracker } : {}), probe: sourceProbe(store, pair, rt), onProgress: (done) => progress.update(done) });
        } catch (err) {
          progress.finish(); // the error goes on a line of its own
          if (!(err instanceof SourceGoneError)) throw err;
          // Not a failure of the copy: its own exit status, so a script can wait for the disk and run it again.
          reportError(new RemapfsError('evacuate', pair.name, err.causeText, err.hint));
          process.exitCode = EXIT_SOURCE_GONE;
          return;
        }
        progress.finish();
        target.flush();
        let mismatches: number[] = [];
        if (argv.verify) mismatches = verifyCopy(source, target, loadAreaMap(mapfilePath, size));
        const summary = {
          version: 1,
          pair: pair.name,
          target: to,
          mapfile: mapfilePath,
          sizeBytes: size,
          copiedBytes: r.copiedBytes,
          refreshedBytes: r.refreshedBytes,
          badSectors: r.badSectors.length,
          resumed: r.resumed,
          throughDaemon: !!daemon,
          catchUpRounds: r.catchUpRounds,
          recopiedBlocks: r.recopiedBlocks,
          verified: argv.verify ? mismatches.length === 0 : null,
        };
        if (argv.json) printJson(summary);
        else {
          process.stdout.write(
            `evacuated ${pair.name} to ${to}: ${r.badSectors.length} unreadable sectors (listed as - in ${mapfilePath})${r.resumed ? `, resumed (${r.refreshedBytes} bytes that had changed copied again)` : ''}` +
              `${daemon ? `, ${r.recopiedBlocks} blocks written during the copy copied again` : ''}${argv.verify ? (mismatches.length ? `; VERIFY FAILED at ${mismatches.length} chunks` : '; verified') : ''}\n`,
          );
        }
        if (mismatches.length) process.exitCode = 1;
      } finally {
        target.close();
        targetLock.release();
        if (rt) rt.close();
        else source.close();
      }
    });
  },
};

/**
 * How the copy tells a pair that went away from bad sectors: the identity of its main and spare (their paths
 * still reach the same node or file, of the same size), and, read directly, a probe read of main past the
 * page cache (a cached page would answer for a disk that is gone) where main holds the block.
 */
function sourceProbe(store: Store, pair: PairRecord, rt: PairRuntime | undefined): SourceProbe {
  const identity = identityCheck([
    { what: "the pair's main", path: pair.mainPath },
    { what: "the pair's spare", path: pair.sparePath },
  ]);
  const blockOf = (byteOffset: number) => Math.floor(byteOffset / pair.blockSize);
  // Through the daemon the source is opened with O_DIRECT already; which blocks the spare holds, the database says.
  if (!rt) return { identity, heldByMain: (byteOffset) => !store.remaps.isRemapped(pair.id, blockOf(byteOffset)) };
  const { device, main } = rt;
  return {
    identity,
    heldByMain: (byteOffset) => !device.isRemapped(blockOf(byteOffset)),
    readUncached: (buf, byteOffset) => {
      if (device.isRemapped(blockOf(byteOffset))) device.read(buf, byteOffset);
      else main.readUncached(buf, byteOffset);
    },
  };
}

/** True when the path exists and is a block device (symlinks followed). */
function isBlockDevice(p: string): boolean {
  try {
    return fs.statSync(p).isBlockDevice();
  } catch {
    return false;
  }
}
