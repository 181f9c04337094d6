/**
 * Builds the adapter of the engine chosen (adapter.ts's chooseEngine): the
 * native engine when it loads and starts, else fuse-native, with one line
 * saying why native does not serve.
 */
import { type AdapterOptions, chooseEngine, type EngineName, type FsAdapter } from './adapter.js';
import { type EngineApi, loadEngine } from './engine-api.js';
import { FuseNativeAdapter } from './fuse-native-adapter.js';
import { NativeAdapter } from './native-adapter.js';
import type { ServedFile } from './ops.js';

export interface CreatedAdapter {
  adapter: FsAdapter;
  /** Why fuse-native serves although native was wanted (one line), if so. */
  fallback?: string;
}

export function createAdapter(want: EngineName | undefined, mountpoint: string, files: ServedFile[], opts: AdapterOptions = {}, load: () => EngineApi | string = loadEngine): CreatedAdapter {
  const choice = chooseEngine(want, load);
  if (choice.engine === 'native' && choice.api) {
    try {
      return { adapter: new NativeAdapter(choice.api, mountpoint, files, opts) };
    } catch (err) {
      const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      return { adapter: new FuseNativeAdapter(mountpoint, files, opts), fallback: `remapfs: the native engine cannot start (${why}); using fuse-native` };
    }
  }
  return { adapter: new FuseNativeAdapter(mountpoint, files, opts), ...(choice.fallback ? { fallback: choice.fallback } : {}) };
}
