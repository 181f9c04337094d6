/**
 * Loading remapfs's add-ons (build/Release/<name>.node under the package
 * root, found by walking up from this file, lib/native/ or dist/lib/native/,
 * to the package.json named "remapfs"). Loading never throws: the result is
 * the module with every function the caller needs, or one line saying why
 * not. Callers load once and keep the result for the life of the process.
 */
import * as fs from 'fs';
import * as path from 'path';
import { createRequire } from 'module';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

export type Loaded<T> = { mod: T; error: undefined } | { mod: undefined; error: string };

/**
 * Loads build/Release/`fileName`; `functions` must all be functions on it.
 * `missingHint` ends the line when the file is absent (what builds it).
 */
export function loadAddon<T>(fileName: string, functions: readonly string[], missingHint: string): Loaded<T> {
  const root = packageRoot(HERE_DIR);
  if (root === undefined) return { mod: undefined, error: `no remapfs package.json above ${HERE_DIR}` };
  const addonPath = path.join(root, 'build', 'Release', fileName);
  if (!fs.existsSync(addonPath)) return { mod: undefined, error: `${addonPath} is missing (${missingHint})` };
  try {
    const mod = createRequire(import.meta.url)(addonPath) as Record<string, unknown>;
    const absent = functions.filter((name) => typeof mod[name] !== 'function');
    if (absent.length > 0) return { mod: undefined, error: `${addonPath} lacks ${absent.join(', ')} (rebuild it: scripts/setup.sh)` };
    return { mod: mod as T, error: undefined };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { mod: undefined, error: `${addonPath} does not load: ${msg.split('\n')[0]}` };
  }
}

function packageRoot(start: string): string | undefined {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      const parsed = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (parsed.name === 'remapfs') return dir;
    } catch {
      // no (readable) package.json here: keep walking up
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}
