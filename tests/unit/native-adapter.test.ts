/**
 * NativeAdapter's order of calls into the engine (a recording fake of the
 * EngineModule): a pair's fast path opens only after every route that is not
 * MAIN is published, so a request that comes meanwhile (a pair added while
 * mounted) goes to JS instead of to a stale route. The real engine's side of
 * this (closed until openFastPath) is tests/e2e/engine.test.ts.
 */
import type { FileDevice } from '../../lib/block/file-device.js';
import { GoneDevice } from '../../lib/block/gone-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { spareLayout } from '../../lib/format/layout.js';
import { NativeAdapter } from '../../lib/fs/native-adapter.js';
import type { EngineApi, EngineHandle } from '../../lib/fs/engine-api.js';
import { RemapIndex } from '../../lib/remap/index-table.js';
import { RemapDevice, type RemapJournal } from '../../lib/remap/remap-device.js';

const B = 4096;
const MAIN_BYTES = 256 * B;
const SPARE_BYTES = 128 * B;

function recordingEngine(log: string[]): EngineApi {
  const handle = {} as EngineHandle;
  const fake: Partial<EngineApi> = {
    create: () => handle,
    addPair: (_e, p) => void log.push(`addPair ${p.id} ${p.name}`),
    publish: (_e, id, blocks, routes, count) => void log.push(`publish ${id} ${Array.from(blocks.subarray(0, count)).map((b, i) => `${b}>${routes[i]}`).join(',')}`),
    fence: (_e, id, first, count) => void log.push(`fence ${id} ${first}+${count}`),
    setWritesSlow: (_e, id, on) => void log.push(`setWritesSlow ${id} ${on}`),
    openFastPath: (_e, id) => void log.push(`openFastPath ${id}`),
    removePair: (_e, id) => void log.push(`removePair ${id}`),
    forgetPair: (_e, id) => void log.push(`forgetPair ${id}`),
    stats: (_e, id) => ({ openHandles: id === 2 ? 1 : 0 }) as ReturnType<EngineApi['stats']>,
  };
  return fake as EngineApi;
}

const noJournal: RemapJournal = { commitRemap: () => undefined, commitRetired: () => undefined };
/** Only what the adapter reads of a FileDevice. */
const fileLike = (fd: number) => ({ ioFd: fd, writesDirect: false, directAlignBytes: 512 }) as unknown as FileDevice;

describe('NativeAdapter and the engine', () => {
  it('publishes every remapped and pending route, then the writes flag, and only then opens the fast path', () => {
    const index = new RemapIndex(MAIN_BYTES / B, spareLayout(SPARE_BYTES, B));
    const spareBlock = index.allocate();
    index.set(7, spareBlock);
    index.markPending(9);
    const remap = new RemapDevice('p', new MemoryDevice('m', MAIN_BYTES), new MemoryDevice('s', SPARE_BYTES), B, index, noJournal);
    const log: string[] = [];
    new NativeAdapter(recordingEngine(log), '/mnt', [{ name: 'p', device: remap, fast: { main: fileLike(10), spare: fileLike(11), blockSize: B, remap } }]);
    expect(log).toEqual(['addPair 1 p', `publish 1 7>${spareBlock},9>-2`, 'setWritesSlow 1 false', 'openFastPath 1']);
  });

  it('a removed file is forgotten by the engine at once; a pair whose disk went away only when its file leaves, its handles counted until then', () => {
    const log: string[] = [];
    const adapter = new NativeAdapter(recordingEngine(log), '/mnt', [{ name: 'a', device: new MemoryDevice('a', MAIN_BYTES) }, { name: 'b', device: new MemoryDevice('b', MAIN_BYTES) }]);
    log.length = 0;
    adapter.removeFile('a');
    expect(log).toEqual(['removePair 1', 'forgetPair 1']);
    log.length = 0;
    adapter.replaceDevice('b', new GoneDevice('b', MAIN_BYTES, 'unplugged'));
    expect(log).toEqual(['removePair 2']);
    expect([adapter.handlesOn('b'), adapter.openHandleCount(), adapter.handlesByFile()]).toEqual([1, 1, { b: 1 }]);
    adapter.removeFile('b');
    expect(log).toEqual(['removePair 2', 'forgetPair 2']);
    expect(adapter.handlesOn('b')).toBe(0);
    void adapter.unmount();
  });

  it('a file without a fast path never opens it: every request goes to JS', () => {
    const log: string[] = [];
    const adapter = new NativeAdapter(recordingEngine(log), '/mnt', [{ name: 'sim', device: new MemoryDevice('sim', MAIN_BYTES) }]);
    expect(log).toEqual(['addPair 1 sim']);
    void adapter.unmount();
  });
});
