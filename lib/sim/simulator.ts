/**
 * The fault simulator behind `remapfs simulate`: serves `<mountpoint>/disk`,
 * a view of an image through a FaultDevice, over FUSE with direct_io so the
 * kernel caches nothing and every read and write of a bad sector reaches the
 * FaultDevice and comes back as a real EIO. Bad and slow sectors can be
 * changed while it runs, through its control socket.
 */
import * as path from 'path';
import { FaultDevice } from '../block/fault-device.js';
import { DeviceLock } from '../block/device-lock.js';
import { FileDevice, type OpenMode } from '../block/file-device.js';
import { SECTOR_BYTES } from '../format/layout.js';
import { RemapfsError } from '../errors.js';
import type { ControlRequest } from '../daemon/control.js';
import { ServedMount } from '../daemon/served-mount.js';
import { formatSectorList } from './sectors.js';
import type { EngineName } from '../fs/adapter.js';

export const SIMULATED_FILE = 'disk';

export interface FaultState {
  image: string;
  sizeBytes: number;
  bad: string;
  slow: string;
  badCount: number;
  slowCount: number;
  delayMs: number;
  reads: number;
  writes: number;
}

export class Simulator {
  readonly mountpoint: string;
  readonly fault: FaultDevice;
  private readonly served: ServedMount;
  private readonly image: string;

  constructor(image: string, mountpoint: string, opts: { mode?: OpenMode; log?: (line: string) => void; engine?: EngineName } = {}) {
    this.image = path.resolve(image);
    this.mountpoint = path.resolve(mountpoint);
    const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
    // It writes the image: held like a pair's device, so no daemon or command writes it meanwhile (nor it theirs).
    const lock = DeviceLock.acquire([this.image], { op: 'simulate', object: this.image, waitMs: 0 });
    let base: FileDevice;
    try {
      base = FileDevice.open(this.image, { mode: opts.mode ?? 'auto' });
    } catch (err) {
      lock.release();
      throw err;
    }
    this.fault = new FaultDevice(base, 'simulated disk');
    this.served = new ServedMount({
      mountpoint: this.mountpoint,
      files: [{ name: SIMULATED_FILE, device: this.fault }],
      extraOptions: ['direct_io'],
      ...(opts.engine ? { engine: opts.engine } : {}),
      log: () => undefined, // EIO is what the simulator is for: do not log each one
      notice: log,
      handle: (req) => this.handle(req),
      release: () => {
        try {
          this.fault.flush();
        } catch (err) {
          log(`remapfs: flush ${this.image}: ${err instanceof Error ? err.message : String(err)}`);
        }
        this.fault.close();
        lock.release();
      },
    });
  }

  get done(): Promise<void> {
    return this.served.done;
  }

  start(): Promise<void> {
    return this.served.start();
  }

  stop(force: boolean): Promise<void> {
    return this.served.stop(force);
  }

  get sectorCount(): number {
    return Math.floor(this.fault.sizeBytes / SECTOR_BYTES);
  }

  state(): FaultState {
    return {
      image: this.image,
      sizeBytes: this.fault.sizeBytes,
      bad: formatSectorList(this.fault.badSectors),
      slow: formatSectorList(this.fault.slowSectors),
      badCount: this.fault.badSectors.size,
      slowCount: this.fault.slowSectors.size,
      delayMs: this.fault.slowDelayMs,
      reads: this.fault.readCount,
      writes: this.fault.writeCount,
    };
  }

  private handle(req: ControlRequest): FaultState {
    if (req.op !== 'fault') throw new RemapfsError('control', 'request', `the simulator does not answer ${req.op}`);
    const set = req.kind === 'slow' ? this.fault.slowSectors : this.fault.badSectors;
    for (const s of req.sectors) {
      if (s < 0 || s >= this.sectorCount) throw new RemapfsError(req.action, `sector ${s}`, `beyond the end of the disk (${this.sectorCount} sectors)`);
    }
    if (req.action === 'add') for (const s of req.sectors) set.add(s);
    else if (req.action === 'remove') for (const s of req.sectors) set.delete(s);
    else if (req.action === 'clear') set.clear();
    if (req.delayMs !== undefined) this.fault.slowDelayMs = req.delayMs;
    return this.state();
  }
}
