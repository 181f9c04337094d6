/** One Lab per test, torn down after it even when it fails; FUSE and loop devices are required. */
import { Lab, requireKernelFeatures } from '../../lib/lab/lab';

export function labPerTest(): Lab {
  let current: Lab | undefined;
  beforeAll(() => requireKernelFeatures());
  beforeEach(() => {
    current = new Lab();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return new Proxy({} as Lab, {
    get(_target, prop) {
      if (!current) throw new Error('the lab exists only inside a test');
      const value = Reflect.get(current, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(current) : value;
    },
  });
}
