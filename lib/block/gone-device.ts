/** GoneDevice: stands in for a pair whose disk went away; every request fails with EIO, nothing reaches a device. */
import type { BlockDevice } from './device.js';
import { ioError } from './fault-device.js';

export class GoneDevice implements BlockDevice {
  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    private readonly why: string,
  ) {}

  read(): void {
    throw ioError('read', `${this.name} (${this.why})`);
  }

  write(): void {
    throw ioError('write', `${this.name} (${this.why})`);
  }

  flush(): void {
    throw ioError('flush', `${this.name} (${this.why})`);
  }

  close(): void {
    // nothing is open
  }
}
