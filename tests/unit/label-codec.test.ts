/**
 * The main label codec (lib/format/label-codec.ts) against docs/format.md
 * ("Main label"): the bytes at each offset, the round trip, every rule a
 * decoded label must pass (each broken with a correct CRC, so that the rule
 * itself is what refuses it), and readLabel (lib/discovery/label.ts) finding
 * a label on a device only where it belongs.
 */
import { FaultDevice } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { readLabel } from '../../lib/discovery/label.js';
import { decodeLabel, encodeLabel, LABEL_BYTES, labelBlockOf, type MainLabel } from '../../lib/format/label-codec.js';
import { crc32 } from '../../lib/format/slot-codec.js';

const UUID = '3f1c2b7a-9d4e-4c21-8a6b-0123456789ab';

function label(over: Partial<MainLabel> = {}): MainLabel {
  const blockSize = over.blockSize ?? 4096;
  const mainBytes = over.mainBytes ?? 64 * 1024 * 1024 + 100;
  return { uuid: UUID, name: 'disk-1', blockSize, mainBytes, labelBlock: labelBlockOf(mainBytes, blockSize), createdAt: 1_767_225_600_000, ...over };
}

/** Applies `edit` to an encoded label and seals it again with a correct CRC. */
function resealed(l: MainLabel, edit: (b: Buffer) => void): Buffer {
  const b = encodeLabel(l);
  edit(b);
  b.writeUInt32LE(crc32(b.subarray(0, 508)), 508);
  return b;
}

describe('encodeLabel', () => {
  it('puts every field where docs/format.md says', () => {
    const l = label({ mainBytes: 3 * 2 ** 32 + 8192, blockSize: 512 });
    const b = encodeLabel(l);
    expect(b.length).toBe(LABEL_BYTES);
    expect(b.toString('ascii', 0, 8)).toBe('RMPFSLBL');
    expect(b.readUInt32LE(8)).toBe(1);
    expect(b.readUInt32LE(12)).toBe(512);
    expect(b.toString('hex', 16, 32)).toBe(UUID.replace(/-/g, ''));
    expect(b.readBigUInt64LE(32)).toBe(BigInt(3 * 2 ** 32 + 8192));
    expect(b.readBigUInt64LE(40)).toBe(BigInt(l.labelBlock));
    expect(l.labelBlock).toBe((3 * 2 ** 32 + 8192) / 512 - 1);
    expect(b.readBigUInt64LE(48)).toBe(BigInt(l.createdAt));
    expect(b.toString('utf8', 56, 62)).toBe('disk-1');
    expect(b.subarray(62, 508).every((x) => x === 0)).toBe(true);
    expect(b.readUInt32LE(508)).toBe(crc32(b.subarray(0, 508)));
  });

  it('fills a 64-byte name to the end of its field', () => {
    const name = 'n'.repeat(64);
    const b = encodeLabel(label({ name }));
    expect(b.toString('utf8', 56, 120)).toBe(name);
    expect(b[120]).toBe(0);
    expect(decodeLabel(b)?.name).toBe(name);
  });
});

describe('decodeLabel', () => {
  it.each([512, 4096, 65536])('gives back what was encoded (block size %i)', (blockSize) => {
    const l = label({ blockSize, mainBytes: 2 ** 40 + 3 * 65536 });
    expect(decodeLabel(encodeLabel(l))).toEqual(l);
  });

  it('reads the first 512 bytes of a longer buffer', () => {
    const l = label();
    const b = Buffer.concat([encodeLabel(l), Buffer.alloc(4096 - 512, 0xff)]);
    expect(decodeLabel(b)).toEqual(l);
  });

  it('refuses every single-bit change (CRC)', () => {
    const good = encodeLabel(label());
    const refused: number[] = [];
    for (let bit = 0; bit < LABEL_BYTES * 8; bit++) {
      const b = Buffer.from(good);
      b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7));
      if (decodeLabel(b) === undefined) refused.push(bit);
    }
    expect(refused.length).toBe(LABEL_BYTES * 8);
  });

  it('ignores non-zero reserved bytes 120..507 (they are covered by the CRC only)', () => {
    const l = label();
    expect(decodeLabel(resealed(l, (b) => b.fill(0xa5, 120, 508)))).toEqual(l);
  });

  it.each<[string, (b: Buffer) => void]>([
    ['a wrong magic', (b) => b.write('RMPFSLOT', 0, 'ascii')],
    ['version 2', (b) => b.writeUInt32LE(2, 8)],
    ['a block size that is not a power of two', (b) => b.writeUInt32LE(3000, 12)],
    ['a block size below 512', (b) => b.writeUInt32LE(256, 12)],
    ['a label block that is not the last block', (b) => b.writeBigUInt64LE(BigInt(label().labelBlock - 1), 40)],
    ['a main size of 2^53', (b) => b.writeBigUInt64LE(2n ** 53n, 32)],
    ['a main size smaller than a block', (b) => b.writeBigUInt64LE(100n, 32)],
    ['a time of 2^53', (b) => b.writeBigUInt64LE(2n ** 53n, 48)],
    ['a time of 2^64 - 1', (b) => b.writeBigUInt64LE(2n ** 64n - 1n, 48)],
    ['the nil UUID', (b) => b.fill(0, 16, 32)],
    ['a UUID that is not version 4', (b) => (b[22] = 0x10)],
    ['an empty name', (b) => b.fill(0, 56, 120)],
    ['a name with a slash', (b) => b.write('a/b', 56, 'utf8')],
    ['a name starting with a dot', (b) => b.write('.', 56, 'ascii')],
  ])('refuses %s, even with a correct CRC', (_what, edit) => {
    expect(decodeLabel(resealed(label(), edit))).toBeUndefined();
  });

  it('refuses a buffer shorter than a label', () => {
    expect(decodeLabel(encodeLabel(label()).subarray(0, 508))).toBeUndefined();
  });
});

describe('labelBlockOf', () => {
  it('is the last whole block', () => {
    expect(labelBlockOf(8192, 4096)).toBe(1);
    expect(labelBlockOf(8192 + 4095, 4096)).toBe(1);
    expect(labelBlockOf(4095, 4096)).toBe(-1);
  });
});

describe('readLabel', () => {
  const MAIN_BYTES = 1024 * 1024 + 1000;

  function mainWith(l: MainLabel | undefined, sizeBytes = MAIN_BYTES): MemoryDevice {
    const dev = new MemoryDevice('main', sizeBytes);
    dev.data.fill(0x5a);
    if (l) encodeLabel(l).copy(dev.data, l.labelBlock * l.blockSize);
    return dev;
  }

  it.each([512, 4096, 65536])('finds a label written for block size %i', (blockSize) => {
    const l = label({ blockSize, mainBytes: MAIN_BYTES });
    expect(readLabel(mainWith(l))).toEqual(l);
  });

  it('finds nothing on a device with no label', () => {
    expect(readLabel(mainWith(undefined))).toBeUndefined();
  });

  it('refuses a label whose main size is not the device size (a copy on a bigger disk)', () => {
    const l = label({ mainBytes: MAIN_BYTES });
    const bigger = mainWith(undefined, MAIN_BYTES + 512);
    encodeLabel(l).copy(bigger.data, l.labelBlock * l.blockSize);
    expect(readLabel(bigger)).toBeUndefined();
  });

  it('refuses a valid label found at the place of another block size', () => {
    // Written for 4096 but placed where a 512-byte block size puts its label.
    const l = label({ blockSize: 4096, mainBytes: MAIN_BYTES });
    const dev = mainWith(undefined);
    encodeLabel(l).copy(dev.data, labelBlockOf(MAIN_BYTES, 512) * 512);
    expect(readLabel(dev)).toBeUndefined();
  });

  it('goes on past a block size whose label place cannot be read', () => {
    const l = label({ blockSize: 4096, mainBytes: MAIN_BYTES });
    const faulty = new FaultDevice(mainWith(l));
    faulty.badSectors.add(Math.floor((labelBlockOf(MAIN_BYTES, 512) * 512) / 512));
    expect(readLabel(faulty)).toEqual(l);
    expect(faulty.readCount).toBeGreaterThan(1);
  });
});
