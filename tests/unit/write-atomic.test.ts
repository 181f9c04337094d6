/**
 * writeFileAtomic and the files written through it: a symlink planted at the
 * target or at a temporary name never redirects a write to another file, the
 * mode is exact whatever the umask, and nothing is left behind.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RemapfsError } from '../../lib/errors.js';
import { createFileExclusive, writeFileAtomic } from '../../lib/fsutil/write-atomic.js';
import { saveMapfile } from '../../lib/rescue/evacuate.js';
import { AreaMap } from '../../lib/rescue/mapfile.js';

describe('writeFileAtomic', () => {
  let dir: string;
  let victim: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-wa-'));
    victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const victimIntact = () => expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
  const entries = () => fs.readdirSync(dir).sort();

  it('writes the data with mode 0600 even under umask 000, and leaves no temp file', () => {
    const old = process.umask(0);
    try {
      writeFileAtomic(path.join(dir, 'out'), 'hello\n');
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('hello\n');
    expect(fs.statSync(path.join(dir, 'out')).mode & 0o777).toBe(0o600);
    expect(entries()).toEqual(['out', 'victim']);
  });

  it('replaces an existing file and applies the mode asked for', () => {
    fs.writeFileSync(path.join(dir, 'out'), 'old contents that are longer\n', { mode: 0o600 });
    writeFileAtomic(path.join(dir, 'out'), 'new\n', { mode: 0o644 });
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('new\n');
    expect(fs.statSync(path.join(dir, 'out')).mode & 0o777).toBe(0o644);
  });

  it('refuses a target that is a symlink, and the file it points to is untouched', () => {
    const target = path.join(dir, 'metrics.prom');
    fs.symlinkSync(victim, target);
    let err: unknown;
    try {
      writeFileAtomic(target, 'attacker controlled\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RemapfsError);
    expect((err as Error).message).toMatch(/metrics\.prom: is a symbolic link \(/);
    victimIntact();
    expect(fs.lstatSync(target).isSymbolicLink()).toBe(true);
    expect(entries()).toEqual(['metrics.prom', 'victim']);
  });

  it('refuses a directory or a device as the target', () => {
    fs.mkdirSync(path.join(dir, 'sub'));
    expect(() => writeFileAtomic(path.join(dir, 'sub'), 'x')).toThrow(/is not a regular file/);
    expect(() => writeFileAtomic('/dev/null', 'x')).toThrow(/is not a regular file/);
  });

  it('fails with one line when the directory is missing', () => {
    expect(() => writeFileAtomic(path.join(dir, 'nodir', 'out'), 'x')).toThrow(/^write .*nodir\/out: .*ENOENT.*\(is the directory there/);
  });

  it('the evacuation mapfile: a symlink at the old fixed temp name does not redirect the write', () => {
    const mapfile = path.join(dir, 'new.img.map');
    // The name the mapfile writer used before: .<mapfile>.tmp, predictable by anyone.
    fs.symlinkSync(victim, path.join(dir, '.new.img.map.tmp'));
    saveMapfile(mapfile, new AreaMap(1024 * 1024), '?', 1, 0);
    victimIntact();
    expect(fs.readFileSync(mapfile, 'utf8')).toMatch(/^0x00000000\s+0x00100000\s+\?$/m);
    expect(fs.lstatSync(mapfile).isFile()).toBe(true);
    expect(fs.lstatSync(path.join(dir, '.new.img.map.tmp')).isSymbolicLink()).toBe(true);
  });

  it('createFileExclusive makes a 0600 file under umask 000 and never opens an existing name or a symlink', () => {
    const old = process.umask(0);
    try {
      expect(createFileExclusive(path.join(dir, 'image'))).toBe(true);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(dir, 'image')).mode & 0o777).toBe(0o600);
    fs.symlinkSync(victim, path.join(dir, 'link'));
    expect(createFileExclusive(path.join(dir, 'link'))).toBe(false);
    expect(createFileExclusive(victim)).toBe(false);
    victimIntact();
  });
});
