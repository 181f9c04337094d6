/**
 * Reading a text file the user names (a badblocks list, a ddrescue mapfile)
 * with its size bounded: the file is untrusted input, and pointing a command
 * at a disk or a huge file must not make it read gigabytes into memory. At most
 * `maxBytes` are read; a larger file (or a pipe with more) is refused with
 * one line naming the limit, and a directory or a device at once.
 */
import * as fs from 'fs';
import { RemapfsError } from '../errors.js';

/** 64 MiB: about two million lines of a badblocks list or a mapfile. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

export function readTextBounded(file: string, op: string, maxBytes = MAX_INPUT_BYTES): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  } catch (err) {
    throw new RemapfsError(op, file, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new RemapfsError(op, file, 'is a directory', 'name a text file');
    if (st.isBlockDevice() || st.isCharacterDevice()) throw new RemapfsError(op, file, 'is a device', 'name a text file (a pipe works too)');
    const tooBig = (): RemapfsError => new RemapfsError(op, file, `is larger than ${maxBytes} bytes`, 'name the text file itself (a list or a mapfile is far smaller)');
    if (st.isFile() && st.size > maxBytes) throw tooBig();
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.alloc(1 << 20);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, chunk, 0, chunk.length, null);
      } catch (err) {
        throw new RemapfsError(op, file, err);
      }
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw tooBig();
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
