/**
 * Test helper: reads `byteLength` bytes of a file or device at `byteOffset` (through the page cache). Throws when
 * fewer come back: a short read must not pass as zeros.
 */
import * as fs from 'fs';

export function readAt(file: string, byteOffset: number, byteLength: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(byteLength);
    let got = 0;
    while (got < byteLength) {
      const n = fs.readSync(fd, buf, got, byteLength - got, byteOffset + got);
      if (n === 0) throw new Error(`read of ${file} at byte ${byteOffset}: ${got} of ${byteLength} bytes before its end`);
      got += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
