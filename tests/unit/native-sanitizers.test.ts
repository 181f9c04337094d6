/** The native helper's and the native engine's C code under AddressSanitizer and UBSan (scripts/test-native.sh). */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const SCRIPT = path.resolve(HERE_DIR, '../../../scripts/test-native.sh');

test('native C logic passes its checks with no sanitizer report', () => {
  const r = spawnSync('bash', [SCRIPT], { encoding: 'utf8', timeout: 230000 });
  if (r.status !== 0) throw new Error(`scripts/test-native.sh exited ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  expect(r.stdout).toContain('test_native: all checks passed');
  expect(r.stdout).toContain('test-native: io-flusher-exec passed');
  expect(r.stdout).toContain('test_routes: passed'); // native engine: route table, splitter, fence stress
  expect(r.stdout).toContain('test-native: engine passed'); // the engine add-on under ASan+UBSan on a real mount
  expect(r.stderr).not.toMatch(/runtime error|Sanitizer/);
}, 240000); // about 45 s alone; the suite's other workers share the CPUs
