/**
 * The demo (`npm run demo` runs dist/scripts/demo.js after setup): it must
 * succeed and leave no mount, loop device or file behind. Its running time is
 * printed, not asserted (these machines are shared and noisy).
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { requireKernelFeatures } from '../../lib/lab/lab.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

describe('demo', () => {
  beforeAll(() => requireKernelFeatures());

  it('finishes, checks its sums, and leaves no mount or loop device behind', () => {
    const demo = path.resolve(HERE_DIR, '../../scripts/demo.js');
    const r = spawnSync(process.execPath, [demo], { encoding: 'utf8', timeout: 120000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/all \d+ sha256 sums match/);
    expect(r.stdout).toMatch(/remapped\s+[1-9]\d* blocks/);
    expect(r.stdout).toMatch(/demo finished in/);

    const dir = /(\/\S*remapfs-demo-[A-Za-z0-9]+)\//.exec(r.stdout)?.[1];
    expect(dir).toBeDefined();
    const where = dir as string;
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(where);
    expect(execFileSync('losetup', ['-a'], { encoding: 'utf8' })).not.toContain(where);
    expect(fs.existsSync(where)).toBe(false);
  });
});
