import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fusermountProgram, lazyUnmountCommands, onPath } from '../../lib/fs/fuse-unmount.js';

describe('lazy unmount without a particular FUSE package', () => {
  const saved = process.env.PATH;
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-unmount-'));
  });
  afterEach(() => {
    process.env.PATH = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const tool = (name: string, mode = 0o755) => fs.writeFileSync(path.join(dir, name), '#!/bin/sh\n', { mode });

  it('prefers fusermount3, then fusermount, and always ends with umount -l', () => {
    tool('fusermount3');
    tool('fusermount');
    process.env.PATH = dir;
    expect(lazyUnmountCommands('/m')).toEqual([
      ['fusermount3', ['-uz', '/m']],
      ['fusermount', ['-uz', '/m']],
      ['umount', ['-l', '/m']],
    ]);
    expect(fusermountProgram()).toBe('fusermount3');
  });

  it('with only fuse3 installed (no fusermount), and with neither', () => {
    tool('fusermount3');
    tool('fusermount', 0o644); // not executable: not a candidate
    process.env.PATH = dir;
    expect(onPath('fusermount')).toBe(false);
    expect(lazyUnmountCommands('/m').map(([p]) => p)).toEqual(['fusermount3', 'umount']);
    fs.rmSync(path.join(dir, 'fusermount3'));
    expect(lazyUnmountCommands('/m')).toEqual([['umount', ['-l', '/m']]]);
    expect(fusermountProgram()).toBeUndefined();
  });
});
