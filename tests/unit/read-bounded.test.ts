/** readTextBounded: a text file the user names is read whole only up to its bound; anything larger is one line. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readTextBounded } from '../../lib/fsutil/read-bounded.js';

describe('readTextBounded', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-bounded-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a file within the bound, exactly', () => {
    const f = path.join(dir, 'list');
    fs.writeFileSync(f, '1\n2\n3\n');
    expect(readTextBounded(f, 'read', 6)).toBe('1\n2\n3\n');
  });

  it('refuses a larger file, a device that never ends, and a directory, each with one line', () => {
    const f = path.join(dir, 'big');
    fs.writeFileSync(f, 'x'.repeat(100));
    expect(() => readTextBounded(f, 'read', 99)).toThrow(/^read .*big: is larger than 99 bytes \(name the text file itself/);
    // A device is refused at once, whether it would read forever or read nothing (docs/cli.md, import-bad).
    expect(() => readTextBounded('/dev/zero', 'read', 1 << 20)).toThrow(/^read \/dev\/zero: is a device \(name a text file/);
    expect(() => readTextBounded('/dev/null', 'read')).toThrow(/^read \/dev\/null: is a device/);
    expect(() => readTextBounded(dir, 'read')).toThrow(/is a directory/);
    expect(() => readTextBounded(path.join(dir, 'missing'), 'read')).toThrow(/^read .*missing: .*ENOENT/);
  });
});
