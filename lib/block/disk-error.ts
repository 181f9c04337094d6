/**
 * What counts as a disk error: an I/O failure of a device, recognised by its
 * errno code (on a RemapfsError, on its cause). Only these may make the remap
 * layer retry, salvage or move a block; anything else (a TypeError, a refused
 * range, a database failure) is not the disk's fault and must propagate.
 * FaultDevice and GoneDevice throw EIO (ioError).
 */
import { errnoCodeOf, RemapfsError } from '../errors.js';

export const DISK_ERROR_CODES: ReadonlySet<string> = new Set(['EIO', 'ENXIO', 'ENODEV', 'EREMOTEIO', 'ENOMEDIUM', 'ENODATA', 'EILSEQ', 'EBADMSG', 'ETIMEDOUT']);

export function isDiskError(err: unknown): boolean {
  const code = errnoCodeOf(err);
  return code !== undefined && DISK_ERROR_CODES.has(code);
}

/**
 * Disk errors that say the device itself is not there, not one of its sectors: the driver took it offline or it
 * was removed (ENODEV: BLK_STS_OFFLINE; ENXIO: a detached loop device, a removed node), or its medium is out
 * (ENOMEDIUM). Such a failure tells nothing about the block read, so nothing is marked or moved for it.
 */
export const DEVICE_GONE_CODES: ReadonlySet<string> = new Set(['ENODEV', 'ENXIO', 'ENOMEDIUM']);

export function isDeviceGone(err: unknown): boolean {
  const code = errnoCodeOf(err);
  return code !== undefined && DEVICE_GONE_CODES.has(code);
}

/**
 * A refusal of a path: by the operating system (any errno code: a path that
 * vanished, a permission, a busy device, a disk error) or by remapfs itself
 * (a RemapfsError: not a file or block device). Where remapfs looks at
 * devices it does not own (discovery, sysfs), such a path is skipped; any
 * other error is a bug and propagates.
 */
export function isPathRefusal(err: unknown): boolean {
  return errnoCodeOf(err) !== undefined || err instanceof RemapfsError;
}

/**
 * A failure with a known cause: a disk error, or a RemapfsError (remapfs's
 * own explained refusals: the spare pool exhausted, metadata refused). Where
 * a failure is only logged (a proactive remap, the scanner), anything else is
 * a bug and propagates.
 */
export function isKnownFailure(err: unknown): boolean {
  return isDiskError(err) || err instanceof RemapfsError;
}
