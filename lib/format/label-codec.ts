/**
 * The main device's label (pure codec). At `init` the last block of main is
 * remapped to the spare (its data copied first, so nothing is lost and the
 * virtual size stays the same); the freed physical block then carries this
 * 512-byte label, so that a main can be recognised after a rename, a move or
 * a reboot. docs/format.md is the normative description.
 *
 * Layout (little-endian): 0 magic "RMPFSLBL"; 8 u32 version 1; 12 u32 block
 * size; 16 16-byte pair UUID; 32 u64 main bytes; 40 u64 label block; 48 u64
 * created (ms); 56 64-byte pair name (UTF-8, NUL-padded); 508 u32 CRC32 of
 * bytes 0..507. Reading a label from a device is discovery/label.ts.
 */
import { crc32 } from './slot-codec.js';
import { labelProblem } from './validate.js';

export const LABEL_MAGIC = 'RMPFSLBL';
export const LABEL_BYTES = 512;

export interface MainLabel {
  uuid: string;
  name: string;
  blockSize: number;
  mainBytes: number;
  labelBlock: number;
  createdAt: number;
}

/** The block that holds the label: the last whole block of main. */
export function labelBlockOf(mainBytes: number, blockSize: number): number {
  return Math.floor(mainBytes / blockSize) - 1;
}

export function encodeLabel(l: MainLabel): Buffer {
  const b = Buffer.alloc(LABEL_BYTES);
  b.write(LABEL_MAGIC, 0, 'ascii');
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(l.blockSize, 12);
  Buffer.from(l.uuid.replace(/-/g, ''), 'hex').copy(b, 16);
  b.writeBigUInt64LE(BigInt(l.mainBytes), 32);
  b.writeBigUInt64LE(BigInt(l.labelBlock), 40);
  b.writeBigUInt64LE(BigInt(l.createdAt), 48);
  const name = Buffer.from(l.name, 'utf8');
  name.copy(b, 56, 0, Math.min(64, name.length));
  b.writeUInt32LE(crc32(b.subarray(0, 508)), 508);
  return b;
}

export function decodeLabel(b: Buffer): MainLabel | undefined {
  if (b.length < LABEL_BYTES || b.toString('ascii', 0, 8) !== LABEL_MAGIC) return undefined;
  if (b.readUInt32LE(8) !== 1 || b.readUInt32LE(508) !== crc32(b.subarray(0, 508))) return undefined;
  const h = b.toString('hex', 16, 32);
  const nameEnd = b.indexOf(0, 56);
  // Numbers of 2^53 or more would be rounded: refused (labelProblem sees them as unsafe).
  const u64 = (off: number): number => (b.readUInt32LE(off + 4) >= 0x200000 ? NaN : Number(b.readBigUInt64LE(off)));
  const label: MainLabel = {
    uuid: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`,
    blockSize: b.readUInt32LE(12),
    mainBytes: u64(32),
    labelBlock: u64(40),
    createdAt: u64(48),
    name: b.toString('utf8', 56, nameEnd < 0 || nameEnd > 120 ? 120 : nameEnd),
  };
  return labelProblem(label) === undefined ? label : undefined;
}
