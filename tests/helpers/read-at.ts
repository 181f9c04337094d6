/** Test helper: reads `byteLength` bytes of a file or device at `byteOffset` (through the page cache). */
import * as fs from 'fs';

export function readAt(file: string, byteOffset: number, byteLength: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(byteLength);
    fs.readSync(fd, buf, 0, byteLength, byteOffset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
