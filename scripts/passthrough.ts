/**
 * Benchmark baseline (b): the smallest fuse-native passthrough of one image
 * file, with the same mount options as remapfs (big_writes, no request
 * timeout) and synchronous fs calls straight into fuse-native's buffers.
 * Usage: node passthrough.js <image> <mountpoint> [auto|buffered] [-o options]
 *   -o options: comma-separated, instead of the default big_writes ('-' for none)
 *   auto:     O_DIRECT writes and cached reads, as remapfs opens devices by default
 *   buffered: plain buffered reads and writes (no per-write error reporting)
 */
import * as fs from 'fs';
import Fuse from 'fuse-native';

class TunedFuse extends Fuse {
  constructor(mnt: string, ops: object, opts: object, private readonly extra: string) {
    super(mnt, ops, opts);
  }

  override _fuseOptions(): string {
    const base: string = super._fuseOptions();
    if (!this.extra) return base;
    return base ? `${base},${this.extra}` : `-o${this.extra}`;
  }
}

function main(): void {
  const [image, mnt, mode = 'auto', options = 'big_writes'] = process.argv.slice(2);
  if (!image || !mnt) throw new Error('usage: passthrough <image> <mountpoint> [auto|buffered] [-o options]');
  const size = fs.statSync(image).size;
  const readFd = fs.openSync(image, 'r+');
  let writeFd = readFd;
  let bounce: Buffer | undefined;
  if (mode === 'auto') {
    writeFd = fs.openSync(image, fs.constants.O_RDWR | fs.constants.O_DIRECT);
    const mem = new WebAssembly.Memory({ initial: 17, maximum: 17 });
    bounce = Buffer.from(mem.buffer);
  }
  const now = new Date();
  const stat = (mode: number, sz: number) => ({ mtime: now, atime: now, ctime: now, nlink: 1, size: sz, mode, uid: 0, gid: 0 });
  const ops = {
    getattr: (p: string, cb: (...a: unknown[]) => void) => (p === '/' ? cb(0, stat(0o40755, 4096)) : p === '/disk' ? cb(0, stat(0o100600, size)) : cb(Fuse.ENOENT)),
    readdir: (_p: string, cb: (...a: unknown[]) => void) => cb(0, ['disk']),
    open: (_p: string, _f: number, cb: (...a: unknown[]) => void) => cb(0, 1),
    release: (_p: string, _fd: number, cb: (...a: unknown[]) => void) => cb(0),
    read: (_p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const n = Math.max(0, Math.min(len, size - pos));
      if (n > 0) fs.readSync(readFd, buf, 0, n, pos);
      cb(n);
    },
    write: (_p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      if (bounce && pos % 4096 === 0 && len % 4096 === 0) {
        for (let done = 0; done < len; ) {
          const n = Math.min(len - done, bounce.length);
          buf.copy(bounce, 0, done, done + n);
          fs.writeSync(writeFd, bounce, 0, n, pos + done);
          done += n;
        }
      } else fs.writeSync(readFd, buf, 0, len, pos);
      cb(len);
    },
    fsync: (_p: string, _d: boolean, _fd: number, cb: (n: number) => void) => {
      fs.fdatasyncSync(writeFd);
      cb(0);
    },
  };
  const fuse = new TunedFuse(mnt, ops, { timeout: false, force: true }, options === '-' ? '' : options);
  fuse.mount((err: Error | null) => {
    if (err) throw err;
    process.stdout.write(`passthrough ready at ${mnt} (${mode})\n`);
  });
  const stop = () => fuse.unmount(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
