/**
 * Lean dispatch of the data requests (read, write) for fuse-native 2.2.
 *
 * fuse-native answers every request through generic JavaScript: a bound
 * signal function, rest and spread argument arrays, a callback closure per
 * request, and a process.nextTick before the libfuse thread is released. For
 * the two requests that carry data, this module installs handlers that call
 * the adapter's synchronous op and release the libfuse thread directly, so a
 * request allocates nothing in JavaScript beyond what the native side creates
 * (the path string and the external buffer). docs/performance.md has the gain.
 *
 * It relies on fuse-native internals: the `_handlers` array passed to the
 * native mount, the binding's op codes and `fuse_native_signal_*` functions,
 * and their argument order:
 *   handler(nativeHandle, opCode, path, fd, buf, byteLength, offsetLow32, offsetHigh32)
 *   signal(nativeHandle, result, 0, buf.buffer)   result: bytes, or -errno
 * installLeanDispatch() checks what it can (version, names, types) and leaves
 * the stock handlers in place otherwise; it must run before mount().
 */
import { createRequire } from 'module';
import * as path from 'path';

const require = createRequire(import.meta.url);

/** A synchronous data op: returns the bytes done, or a negative errno. It must not throw. */
export type DataOp = (path: string, fd: number, buf: Buffer, byteLength: number, byteOffset: number) => number;

export type NativeSignal = (handle: unknown, result: number, unused: number, arrayBuffer: ArrayBufferLike) => void;
export type Handler = (handle: unknown, opCode: number, path: string, fd: number, buf: Buffer, byteLength: number, offsetLow: number, offsetHigh: number) => void;

interface FuseBinding {
  op_read: number;
  op_write: number;
  fuse_native_signal_read: NativeSignal;
  fuse_native_signal_write: NativeSignal;
}

/** The fuse-native versions whose internals match the contract above. */
const KNOWN_VERSIONS = /^2\.2\./;
const TWO_POW_32 = 4294967296;
/** -EIO (Linux). */
const EIO = -5;

/** fuse-native's binding (the same module object fuse-native itself loaded), or the reason it cannot be used. */
function loadBinding(): FuseBinding | string {
  let pkgDir: string;
  let version: string;
  try {
    const pkgJson = require.resolve('fuse-native/package.json');
    pkgDir = path.dirname(pkgJson);
    version = (require(pkgJson) as { version: string }).version;
  } catch (err) {
    return `fuse-native not found (${err instanceof Error ? err.message : String(err)})`;
  }
  if (!KNOWN_VERSIONS.test(version)) return `fuse-native ${version} is not a version this dispatch was written for`;
  try {
    const load = createRequire(path.join(pkgDir, 'index.js'))('node-gyp-build') as (dir: string) => Record<string, unknown>;
    const b = load(pkgDir);
    if (typeof b.op_read !== 'number' || typeof b.op_write !== 'number') return 'fuse-native binding has no read/write op codes';
    if (typeof b.fuse_native_signal_read !== 'function' || typeof b.fuse_native_signal_write !== 'function') return 'fuse-native binding has no read/write signal functions';
    return b as unknown as FuseBinding;
  } catch (err) {
    return `fuse-native binding did not load (${err instanceof Error ? err.message : String(err)})`;
  }
}

let binding: FuseBinding | string | undefined;

/** The handler for one data op: calls it and answers the libfuse thread through `signal`. */
export function makeHandler(op: DataOp, signal: NativeSignal): Handler {
  return (handle, _opCode, p, fd, buf, byteLength, offsetLow, offsetHigh) => {
    let result: number;
    try {
      result = op(p, fd, buf, byteLength, offsetLow + offsetHigh * TWO_POW_32);
    } catch {
      result = EIO; // an op must not throw; the libfuse thread waits for an answer either way
    }
    signal(handle, result, 0, buf.buffer);
  };
}

/**
 * Replaces the read and write handlers of a fuse-native instance (not yet
 * mounted). Returns undefined when installed, or why the stock handlers stay.
 */
export function installLeanDispatch(fuse: object, ops: { read: DataOp; write: DataOp }): string | undefined {
  binding ??= loadBinding();
  if (typeof binding === 'string') return binding;
  const handlers = (fuse as { _handlers?: unknown })._handlers;
  if (!Array.isArray(handlers) || typeof handlers[binding.op_read] !== 'function' || typeof handlers[binding.op_write] !== 'function') {
    return 'fuse-native instance has no handler table';
  }
  handlers[binding.op_read] = makeHandler(ops.read, binding.fuse_native_signal_read);
  handlers[binding.op_write] = makeHandler(ops.write, binding.fuse_native_signal_write);
  return undefined;
}
