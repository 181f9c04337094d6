/**
 * One Lab per test, torn down after it even when it fails; FUSE and loop
 * devices are required, and so is whatever `require` checks (it throws to fail
 * the suite, never to skip it). Reading and setting properties (`lab.launcher`)
 * goes to the current test's Lab.
 */
import { Lab, requireKernelFeatures } from '../../lib/lab/lab.js';

export function labPerTest(require?: () => void): Lab {
  let current: Lab | undefined;
  const now = (): Lab => {
    if (!current) throw new Error('the lab exists only inside a test');
    return current;
  };
  beforeAll(() => {
    requireKernelFeatures();
    require?.();
  });
  beforeEach(() => {
    current = new Lab();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return new Proxy({} as Lab, {
    get(_target, prop) {
      const lab = now();
      const value = Reflect.get(lab, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(lab) : value;
    },
    set(_target, prop, value: unknown) {
      return Reflect.set(now(), prop, value);
    },
  });
}
