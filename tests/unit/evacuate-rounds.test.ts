/**
 * evacuate() (lib/rescue/evacuate.ts) on MemoryDevices: a resumed run copies
 * again the finished chunks that changed since the run before, and a catch-up
 * under writes that never stop ends in an error, not in a copy called
 * finished.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { type DirtyTracker, evacuate, MAX_ROUNDS } from '../../lib/rescue/evacuate.js';

const MiB = 1024 * 1024;
const B = 4096;

describe('evacuate', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-evac-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function devices(): { source: MemoryDevice; target: MemoryDevice; mapfilePath: string } {
    const source = new MemoryDevice('source', 4 * MiB);
    for (let i = 0; i < source.data.length; i++) source.data[i] = (i * 7 + 3) & 0xff;
    return { source, target: new MemoryDevice('target', 4 * MiB), mapfilePath: path.join(dir, `${Math.random()}.map`) };
  }

  it('a resumed run copies again what changed on the source since the run before, and only that', async () => {
    const d = devices();
    const first = await evacuate({ ...d, restart: false, retries: 0 });
    expect({ resumed: first.resumed, equal: d.target.data.equals(d.source.data) }).toEqual({ resumed: false, equal: true });
    // Written between the runs (or owed by a catch-up the run before never finished).
    d.source.data.fill(0x5a, 3 * MiB + 5 * B, 3 * MiB + 6 * B);
    const second = await evacuate({ ...d, restart: false, retries: 0 });
    expect({ resumed: second.resumed, refreshed: second.refreshedBytes, copied: second.copiedBytes, equal: d.target.data.equals(d.source.data) }).toEqual({ resumed: true, refreshed: MiB, copied: 0, equal: true });
  });

  it('writes that never stop: after the last catch-up round the run fails, its mapfile saved', async () => {
    const d = devices();
    let takes = 0;
    const busy: DirtyTracker = { blockSize: B, start: () => Promise.resolve(), stop: () => Promise.resolve(), take: () => Promise.resolve([takes++ % 1024]) };
    await expect(evacuate({ ...d, restart: false, retries: 0, tracker: busy })).rejects.toThrow(new RegExp(`^evacuate .*: writes did not stop: 1 blocks written during the last of ${MAX_ROUNDS} catch-up rounds are not on the target`));
    expect(takes).toBe(MAX_ROUNDS + 1);
    expect(fs.readFileSync(d.mapfilePath, 'utf8')).toMatch(/0x00000000\s+0x00400000\s+\+/);
  });
});
