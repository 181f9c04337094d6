import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { type DeviceIdentity, FileDevice, identify, sameStorage } from '../../block/file-device.js';
import { DeviceLock } from '../../block/device-lock.js';
import type { Store } from '../../store/db.js';
import type { BlockDevice } from '../../block/device.js';
import { socketTransport } from '../../daemon/control.js';
import { pairOps } from '../../pair/operations.js';
import { RemapfsError, UsageError } from '../../errors.js';
import { createFileExclusive } from '../../fsutil/write-atomic.js';
import { openPair, type PairRuntime } from '../../pair/pair.js';
import { type DirtyTracker, evacuate, loadAreaMap, verifyCopy } from '../../rescue/evacuate.js';
import { CLI_LOCK_WAIT_MS, liveDaemon, printJson, requirePair, withStore } from '../common.js';
import { countOption } from '../options.js';
import { Progress } from '../progress.js';

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
      // A new image is 0600 (it holds the pair's data); an existing target keeps its mode.
      if (createFileExclusive(to, { op: 'evacuate' })) fs.truncateSync(to, size);
      const tid = identify(to);
      if (tid.isBlockDevice && argv.mapfile === undefined) {
        throw new UsageError(`--to ${to} is a block device: name the mapfile with --mapfile (it goes next to the target only for image files)`);
      }
      checkTargetApart(store, tid);
      if (tid.sizeBytes < size) {
        if (tid.isBlockDevice) throw new RemapfsError('evacuate', to, `has ${tid.sizeBytes} bytes, the pair needs ${size}`, 'use a bigger disk');
        fs.truncateSync(tid.realPath, size);
      }
      const mapfilePath = path.resolve(argv.mapfile ?? `${to}.map`);
      const daemon = liveDaemon(store);
      let source: BlockDevice;
      let rt: PairRuntime | undefined;
      let tracker: DirtyTracker | undefined;
      if (daemon) {
        // Through the daemon, so the copy sees what users write; O_DIRECT: no page cache in between.
        source = FileDevice.open(path.join(daemon.mountpoint, pair.name), { mode: 'direct', readOnly: true });
        const ops = pairOps(socketTransport(daemon.socket, pair.name));
        tracker = {
          blockSize: pair.blockSize,
          start: async () => void (await ops.track({ action: 'start' })),
          take: () => ops.track({ action: 'take' }),
          stop: async () => void (await ops.track({ action: 'stop' })),
        };
      } else {
        rt = openPair(store, pair, { lockWaitMs: CLI_LOCK_WAIT_MS });
        source = rt.device;
      }
      // The target is written: hold it like a pair's device, so nothing else writes it meanwhile.
      let targetLock: DeviceLock | undefined;
      let target: FileDevice | undefined;
      try {
        targetLock = DeviceLock.acquire([tid.realPath], { op: 'evacuate', object: to, waitMs: 0 });
        target = FileDevice.open(to);
      } catch (err) {
        targetLock?.release();
        if (rt) rt.close();
        else source.close();
        throw err;
      }
      try {
        const progress = new Progress(`evacuate ${pair.name}`, size, 1);
        const r = await evacuate({ source, target, mapfilePath, restart: argv.restart, retries, ...(tracker ? { tracker } : {}), onProgress: (done) => progress.update(done) });
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
            `evacuated ${pair.name} to ${to}: ${r.badSectors.length} unreadable sectors (listed as - in ${mapfilePath})${r.resumed ? ', resumed' : ''}` +
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

/** Refuses a target that shares storage with any pair's device (a loop device over a spare, say) or lies under a remapfs mount. */
function checkTargetApart(store: Store, target: DeviceIdentity): void {
  for (const p of store.pairs.list()) {
    for (const [role, devicePath] of [['main', p.mainPath], ['spare', p.sparePath]] as const) {
      let theirs: DeviceIdentity;
      try {
        theirs = identify(devicePath);
      } catch {
        continue;
      }
      if (sameStorage(target, theirs)) {
        throw new RemapfsError('evacuate', target.realPath, `shares storage with the ${role} of pair ${p.name} (${devicePath})`, 'evacuate to a disk or file of its own');
      }
    }
  }
  for (const m of store.mounts.live()) {
    if (target.extent.chain.some((c) => c.startsWith(m.mountpoint + '/'))) {
      throw new RemapfsError('evacuate', target.realPath, `is served by remapfs at ${m.mountpoint}`, 'evacuate to a disk or file of its own');
    }
  }
}
