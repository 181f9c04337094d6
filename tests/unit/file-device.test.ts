/**
 * FileDevice on a temporary image file (on the file system of os.tmpdir(),
 * which must accept O_DIRECT): what each open mode really opens (the flags of
 * its descriptors, from /proc/self/fdinfo), the O_DIRECT bounce buffer with
 * unaligned offsets and sizes (read-modify-write of the partial first and last
 * sectors, the bytes around left alone), a range over the 1 MiB bounce
 * buffer, a file that ends inside an alignment unit, and refusals. Every
 * outcome is checked against the file's bytes read with plain fs calls.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileDevice, identify, type OpenMode } from '../../lib/block/file-device.js';
import { RemapfsError } from '../../lib/errors.js';

const MiB = 1024 * 1024;
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-file-device-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function pattern(byteLength: number, seed: number): Buffer {
  const b = Buffer.alloc(byteLength);
  for (let i = 0; i < byteLength; i++) b[i] = (i * 131 + seed * 17 + (i >> 9)) & 0xff;
  return b;
}

/** A new image of `sizeBytes` filled with a pattern; returns its path and contents. */
function image(name: string, sizeBytes: number): { file: string; bytes: Buffer } {
  const file = path.join(dir, name);
  const bytes = pattern(sizeBytes, name.length);
  fs.writeFileSync(file, bytes);
  return { file, bytes };
}

/** The open flags of this process's descriptors on `file`. */
function openFlags(file: string): number[] {
  const real = fs.realpathSync(file);
  const out: number[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== real) continue;
    const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) out.push(parseInt(m[1] as string, 8));
  }
  return out;
}

const { O_DIRECT, O_DSYNC, O_RDONLY } = fs.constants;
/** The access-mode bits of open flags (O_RDONLY, O_WRONLY, O_RDWR). */
const O_ACCMODE = 3;
const has = (flags: number, bit: number): boolean => (flags & bit) === bit;

describe('FileDevice open modes', () => {
  const cases: Array<[OpenMode, 'direct' | 'dsync' | 'buffered', (flags: number[]) => void]> = [
    ['auto', 'direct', (f) => {
      expect(f).toHaveLength(2);
      expect(f.filter((x) => has(x, O_DIRECT))).toHaveLength(1);
    }],
    ['direct', 'direct', (f) => {
      expect(f).toHaveLength(1);
      expect(has(f[0] as number, O_DIRECT)).toBe(true);
    }],
    ['dsync', 'dsync', (f) => {
      expect(f).toHaveLength(2);
      expect(f.some((x) => has(x, O_DIRECT))).toBe(false);
      expect(f.filter((x) => has(x, O_DSYNC))).toHaveLength(1);
    }],
    ['buffered', 'buffered', (f) => {
      expect(f).toHaveLength(1);
      expect(has(f[0] as number, O_DIRECT) || has(f[0] as number, O_DSYNC)).toBe(false);
    }],
  ];
  for (const [mode, writePath, check] of cases) {
    it(`${mode}: writes go ${writePath}, and the descriptors say so; close releases them`, () => {
      const { file } = image(`mode-${mode}`, MiB);
      const dev = FileDevice.open(file, { mode });
      try {
        expect(dev.mode).toBe(mode);
        expect(dev.writePath).toBe(writePath);
        expect(dev.sizeBytes).toBe(MiB);
        check(openFlags(file));
      } finally {
        dev.close();
      }
      expect(openFlags(file)).toEqual([]);
    });
  }

  it('readOnly opens read-only descriptors, and a write is refused', () => {
    const { file, bytes } = image('read-only', 64 * 1024);
    const dev = FileDevice.open(file, { readOnly: true, mode: 'buffered' });
    try {
      for (const f of openFlags(file)) expect(f & O_ACCMODE).toBe(O_RDONLY);
      expect(() => dev.write(Buffer.alloc(512), 0)).toThrow(RemapfsError);
    } finally {
      dev.close();
    }
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });

  it('identify refuses what is neither a file nor a block device, and a missing path', () => {
    expect(() => identify(dir)).toThrow(/not a regular file or block device/);
    expect(() => FileDevice.open(path.join(dir, 'missing'))).toThrow(/check that the path exists/);
  });
});

describe.each<OpenMode>(['direct', 'auto', 'dsync', 'buffered'])('FileDevice in %s mode', (mode) => {
  const SIZE = 4 * MiB;

  /** Writes `data` at `byteOffset` and checks the whole file against a model. */
  function writeAndCompare(dev: FileDevice, file: string, model: Buffer, data: Buffer, byteOffset: number): void {
    dev.write(data, byteOffset);
    data.copy(model, byteOffset);
    expect(fs.readFileSync(file).equals(model)).toBe(true);
  }

  it('unaligned writes change exactly their bytes (read-modify-write of the partial sectors)', () => {
    const { file, bytes } = image(`rmw-${mode}`, SIZE);
    const model = Buffer.from(bytes);
    const dev = FileDevice.open(file, { mode });
    try {
      writeAndCompare(dev, file, model, pattern(100, 1), 1000); // inside one sector
      writeAndCompare(dev, file, model, pattern(1, 2), 511); // the last byte of a sector
      writeAndCompare(dev, file, model, pattern(600, 3), 4000); // across a 4096 boundary
      writeAndCompare(dev, file, model, pattern(512, 4), 8192); // aligned
      writeAndCompare(dev, file, model, pattern(3 * 4096 + 5, 5), 3 * 4096 - 3); // both ends partial
      writeAndCompare(dev, file, model, pattern(7, 6), SIZE - 7); // the last bytes
      writeAndCompare(dev, file, model, Buffer.alloc(0), 77); // nothing
    } finally {
      dev.close();
    }
  });

  it('unaligned reads return exactly the bytes asked for', () => {
    const { file, bytes } = image(`read-${mode}`, SIZE);
    const dev = FileDevice.open(file, { mode });
    try {
      for (const [off, len] of [[0, 1], [1, 511], [513, 1023], [4095, 2], [12345, 54321], [SIZE - 1, 1], [SIZE - 4096, 4096]] as const) {
        const got = Buffer.alloc(len, 0xee);
        dev.read(got, off);
        expect(got.equals(bytes.subarray(off, off + len))).toBe(true);
        const uncached = Buffer.alloc(len, 0xee);
        dev.readUncached(uncached, off);
        expect(uncached.equals(got)).toBe(true);
      }
    } finally {
      dev.close();
    }
  });

  it('a range over the 1 MiB bounce buffer, unaligned at both ends, is written and read whole', () => {
    const { file, bytes } = image(`big-${mode}`, SIZE);
    const model = Buffer.from(bytes);
    const dev = FileDevice.open(file, { mode });
    try {
      const data = pattern(2 * MiB + 3 * 4096 + 777, 9);
      writeAndCompare(dev, file, model, data, 4097);
      const back = Buffer.alloc(data.length);
      dev.read(back, 4097);
      expect(back.equals(data)).toBe(true);
      const whole = Buffer.alloc(SIZE);
      dev.read(whole, 0);
      expect(whole.equals(model)).toBe(true);
    } finally {
      dev.close();
    }
  });

  it('a file that ends inside an alignment unit is written and read to its last byte', () => {
    const sizeBytes = MiB + 100;
    const { file, bytes } = image(`tail-${mode}`, sizeBytes);
    const model = Buffer.from(bytes);
    const dev = FileDevice.open(file, { mode });
    try {
      expect(dev.sizeBytes).toBe(sizeBytes);
      writeAndCompare(dev, file, model, pattern(300, 11), sizeBytes - 300);
      writeAndCompare(dev, file, model, pattern(5000, 12), sizeBytes - 5000);
      dev.flush();
      const back = Buffer.alloc(5000);
      dev.read(back, sizeBytes - 5000);
      expect(back.equals(model.subarray(sizeBytes - 5000))).toBe(true);
      expect(fs.statSync(file).size).toBe(sizeBytes);
    } finally {
      dev.close();
    }
  });

  it('refuses requests outside the device and leaves the file as it was', () => {
    const { file, bytes } = image(`range-${mode}`, MiB);
    const dev = FileDevice.open(file, { mode });
    try {
      expect(() => dev.write(Buffer.alloc(512, 1), MiB)).toThrow(/beyond the end of the device/);
      expect(() => dev.write(Buffer.alloc(2, 1), MiB - 1)).toThrow(/beyond the end of the device/);
      expect(() => dev.read(Buffer.alloc(1), MiB)).toThrow(/beyond the end of the device/);
      expect(() => dev.readUncached(Buffer.alloc(513), MiB - 512)).toThrow(/beyond the end of the device/);
      expect(() => dev.read(Buffer.alloc(1), -1)).toThrow(/beyond the end of the device/);
    } finally {
      dev.close();
    }
    expect(fs.statSync(file).size).toBe(MiB);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });
});
