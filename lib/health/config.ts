/**
 * Runtime knobs of a pair (pure): names, defaults, limits and parsing. They
 * are stored per pair in SQLite (table config) and apply to a running daemon
 * without a restart.
 */

export interface PairConfig {
  /** Base interval between full background scans. */
  scanIntervalHours: number;
  /** Background scan rate limit. */
  scanRateMiBps: number;
  /** Bytes read per scan step. */
  scanChunkKiB: number;
  /** The scanner waits until user I/O has been quiet this long. */
  scanIdleMs: number;
  scanEnabled: boolean;
  /** A block read at least this slow is recorded as slow. */
  latencyWarnMs: number;
  /** A block read at least this slow is copied to the spare (reason scan-slow). */
  latencyRemapMs: number;
  /** A block read at least this slow counts as critical in reports. */
  latencyCriticalMs: number;
  readRetries: number;
  /** Health warns (exit bit 4) above this share of the spare pool in use. */
  spareWarnPercent: number;
  /** Health warns (exit bit 7) when exhaustion is predicted within this many days. */
  predictDays: number;
}

export const DEFAULT_CONFIG: Readonly<PairConfig> = {
  scanIntervalHours: 24,
  scanRateMiBps: 4,
  scanChunkKiB: 256,
  scanIdleMs: 100,
  scanEnabled: true,
  latencyWarnMs: 20,
  latencyRemapMs: 50,
  latencyCriticalMs: 100,
  readRetries: 2,
  spareWarnPercent: 80,
  predictDays: 30,
};

type Key = keyof PairConfig;

const LIMITS: Record<Exclude<Key, 'scanEnabled'>, [number, number]> = {
  scanIntervalHours: [0.001, 24 * 365],
  scanRateMiBps: [0.01, 100000],
  scanChunkKiB: [4, 65536],
  scanIdleMs: [0, 600000],
  latencyWarnMs: [1, 600000],
  latencyRemapMs: [1, 600000],
  latencyCriticalMs: [1, 600000],
  readRetries: [0, 100],
  spareWarnPercent: [1, 100],
  predictDays: [1, 36500],
};

export const CONFIG_KEYS = Object.keys(DEFAULT_CONFIG) as Key[];

export function isConfigKey(k: string): k is Key {
  return (CONFIG_KEYS as string[]).includes(k);
}

/** Parses one value for `key`; throws an Error with a message for users. */
export function parseConfigValue(key: string, raw: unknown): PairConfig[Key] {
  if (!isConfigKey(key)) throw new Error(`unknown setting "${key}"; settings: ${CONFIG_KEYS.join(', ')}`);
  if (key === 'scanEnabled') {
    if (raw === true || raw === 'true' || raw === '1' || raw === 'on') return true;
    if (raw === false || raw === 'false' || raw === '0' || raw === 'off') return false;
    throw new Error(`${key} must be true or false, got "${String(raw)}"`);
  }
  // Plain decimal only: no sign, exponent, hex (0x10), binary (0b101) or spaces, which Number() would take.
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^(\d+(\.\d+)?|\.\d+)$/.test(raw) ? Number(raw) : NaN;
  const [lo, hi] = LIMITS[key];
  if (!Number.isFinite(n) || n < lo || n > hi) throw new Error(`${key} must be a number from ${lo} to ${hi} in plain decimal, got "${String(raw)}"`);
  if ((key === 'readRetries' || key === 'scanChunkKiB') && !Number.isInteger(n)) throw new Error(`${key} must be a whole number`);
  return n;
}

/** Checks relations between settings; returns a message or undefined. */
export function checkConfig(c: PairConfig): string | undefined {
  if (!(c.latencyWarnMs <= c.latencyRemapMs && c.latencyRemapMs <= c.latencyCriticalMs)) {
    return 'latency thresholds must satisfy latencyWarnMs <= latencyRemapMs <= latencyCriticalMs';
  }
  return undefined;
}

/**
 * Parses "key=value" lines or a JSON object into changes; throws on the first
 * bad one, so nothing is applied from a partly bad input.
 */
export function parseConfigText(text: string): Partial<PairConfig> {
  const trimmed = text.trim();
  const out: Record<string, unknown> = {};
  if (trimmed.startsWith('{')) {
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch {
      throw new Error('not valid JSON');
    }
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) out[k] = parseConfigValue(k, v);
  } else {
    for (const line of trimmed.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
      const eq = line.indexOf('=');
      if (eq < 0) throw new Error(`"${line}" is not key=value`);
      const k = line.slice(0, eq).trim();
      out[k] = parseConfigValue(k, line.slice(eq + 1).trim());
    }
  }
  return out;
}

export function mergeConfig(base: PairConfig, changes: Partial<PairConfig>): PairConfig {
  const merged = { ...base, ...changes };
  const problem = checkConfig(merged);
  if (problem) throw new Error(problem);
  return merged;
}
