/** readLink (lib/daemon/attach.ts): a link udev wrote relative ("../loop0") names the same device as an absolute one. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readLink } from '../../lib/daemon/attach.js';

describe('readLink', () => {
  it('resolves a relative link against its own directory, not the working directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-link-'));
    try {
      fs.mkdirSync(path.join(dir, 'remapfs'));
      fs.symlinkSync('../loop7', path.join(dir, 'remapfs', 'rel'));
      fs.symlinkSync(path.join(dir, 'loop7'), path.join(dir, 'remapfs', 'abs'));
      expect(readLink(path.join(dir, 'remapfs', 'rel'))).toBe(path.join(dir, 'loop7'));
      expect(readLink(path.join(dir, 'remapfs', 'abs'))).toBe(path.join(dir, 'loop7'));
      expect(readLink(path.join(dir, 'remapfs', 'none'))).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
