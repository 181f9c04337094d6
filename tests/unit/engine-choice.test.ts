import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chooseEngine, ENGINE_ENV, ENGINE_IO_ENV, ENGINE_TRANSPORT_ENV, fuseUringOf, ringWorkersOf } from '../../lib/fs/adapter.js';
import { type EngineApi, loadEngine } from '../../lib/fs/engine-api.js';
import { createAdapter } from '../../lib/fs/serve.js';
import { engineOf } from '../../lib/cli/engine.js';
import { formatEngine } from '../../lib/cli/commands/status.js';
import { UsageError } from '../../lib/errors.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';

const UNAVAILABLE = 'libfuse3.so.3: cannot open shared object file: No such file or directory\nRequire stack: ...';

describe('engine choice', () => {
  it('native unavailable: fuse-native serves, and one line says why', () => {
    const choice = chooseEngine(undefined, () => UNAVAILABLE);
    expect(choice.engine).toBe('fuse-native');
    expect(choice.fallback).toBe('remapfs: the native engine cannot load (libfuse3.so.3: cannot open shared object file: No such file or directory); using fuse-native');
    expect(choice.fallback?.split('\n')).toHaveLength(1);
    // A loader that throws counts as unavailable too.
    const thrown = chooseEngine('native', () => {
      throw new Error('boom\nstack');
    });
    expect(thrown).toMatchObject({ engine: 'fuse-native', fallback: 'remapfs: the native engine cannot load (boom); using fuse-native' });
  });

  it('fuse-native asked for: the native engine is not even loaded', () => {
    let loaded = 0;
    const choice = chooseEngine('fuse-native', () => {
      loaded++;
      return UNAVAILABLE;
    });
    expect(choice).toEqual({ engine: 'fuse-native' });
    expect(loaded).toBe(0);
  });

  it('native available: it is chosen with no line', () => {
    const api = { version: () => 'fake' } as unknown as EngineApi;
    expect(chooseEngine(undefined, () => api)).toEqual({ engine: 'native', api });
  });

  it('createAdapter builds the fuse-native adapter (not mounted) with the fallback line when native is unavailable', () => {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-engine-'));
    try {
      const { adapter, fallback } = createAdapter(undefined, mnt, [{ name: 'p', device: new MemoryDevice('p', 8192) }], {}, () => UNAVAILABLE);
      expect(adapter.engine).toBe('fuse-native');
      expect(fallback).toMatch(/^remapfs: the native engine cannot load \(libfuse3\.so\.3: .*\); using fuse-native$/);
      expect(adapter.handlesByFile()).toEqual({ p: 0 });
      expect(adapter.engineStats('p')).toBeUndefined();
    } finally {
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('--engine wins over REMAPFS_ENGINE; a bad REMAPFS_ENGINE is a usage error', () => {
    expect(engineOf(undefined, {})).toBeUndefined();
    expect(engineOf(undefined, { [ENGINE_ENV]: '' })).toBeUndefined();
    expect(engineOf(undefined, { [ENGINE_ENV]: 'fuse-native' })).toBe('fuse-native');
    expect(engineOf('native', { [ENGINE_ENV]: 'fuse-native' })).toBe('native');
    expect(() => engineOf(undefined, { [ENGINE_ENV]: 'fuse2' })).toThrow(UsageError);
    expect(() => engineOf(undefined, { [ENGINE_ENV]: 'fuse2' })).toThrow(`${ENGINE_ENV}=fuse2 is not an engine (use native or fuse-native)`);
  });

  it('REMAPFS_ENGINE_IO picks the io model: io_uring (default) or blocking; a bad value is a usage error', () => {
    expect([ringWorkersOf({}), ringWorkersOf({ [ENGINE_IO_ENV]: '' }), ringWorkersOf({ [ENGINE_IO_ENV]: 'io_uring' })]).toEqual([undefined, undefined, undefined]);
    expect(ringWorkersOf({ [ENGINE_IO_ENV]: 'blocking' })).toBe(0);
    expect(() => engineOf('native', { [ENGINE_IO_ENV]: 'uring' })).toThrow(new UsageError(`${ENGINE_IO_ENV}=uring is not an io model (use io_uring or blocking)`));
  });

  it('REMAPFS_ENGINE_TRANSPORT picks how ring workers take requests: auto (FUSE over io_uring where offered) or dev; a bad value is a usage error', () => {
    expect([fuseUringOf({}), fuseUringOf({ [ENGINE_TRANSPORT_ENV]: '' }), fuseUringOf({ [ENGINE_TRANSPORT_ENV]: 'auto' })]).toEqual([1, 1, 1]);
    expect(fuseUringOf({ [ENGINE_TRANSPORT_ENV]: 'dev' })).toBe(0);
    expect(() => engineOf('native', { [ENGINE_TRANSPORT_ENV]: 'uring' })).toThrow(new UsageError(`${ENGINE_TRANSPORT_ENV}=uring is not a transport (use auto or dev)`));
  });

  it('status names the engine and the native io model', () => {
    expect(formatEngine('fuse-native', undefined)).toBe('fuse-native');
    expect(formatEngine('native', { ringWorkers: 2, poolThreads: 4, ringErrno: 0, maxThreads: 16 })).toBe('native (io_uring: 2 ring workers, 4 pool threads)');
    expect(formatEngine('native', { ringWorkers: 1, poolThreads: 4, ringErrno: 0, maxThreads: 16, fuseUringEntries: 32 })).toBe(
      'native (io_uring: 1 ring workers, 4 pool threads; FUSE over io_uring: 32 entries)',
    );
    expect(formatEngine('native', { ringWorkers: 1, poolThreads: 4, ringErrno: 0, maxThreads: 16, fuseUringEntries: 8, fuseUringEntriesMax: 32 })).toBe(
      'native (io_uring: 1 ring workers, 4 pool threads; FUSE over io_uring: 8 of 32 entries)',
    );
    expect(formatEngine('native', { ringWorkers: 0, poolThreads: 0, ringErrno: 0, maxThreads: 16 })).toBe('native (blocking: 16 threads)');
    expect(formatEngine('native', { ringWorkers: 0, poolThreads: 0, ringErrno: 1, maxThreads: 16 })).toBe('native (blocking: 16 threads; io_uring unavailable: EPERM)');
  });

  it('under CI=true the native engine loads here (no silent fallback)', () => {
    const api = loadEngine();
    if (process.env.CI === 'true') {
      expect(typeof api).not.toBe('string');
      expect((api as EngineApi).version()).toMatch(/libfuse 3\./);
    } else if (typeof api === 'string') {
      expect(api.split('\n')).toHaveLength(1);
      process.stderr.write(`engine-choice: the native engine does not load here: ${api}\n`);
    }
  });
});
