/**
 * Device calls in the metadata and discovery code catch only disk errors
 * (issue 13): a disk error reading a slot, a header or a label makes that copy
 * invalid, or means no label there, and one writing a slot makes it a failed
 * slot; any other exception (a bug: a TypeError, a refused range) propagates
 * instead of being taken for bad metadata.
 */
import type { BlockDevice } from '../../lib/block/device.js';
import { ioError } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { spareLayout } from '../../lib/format/layout.js';
import { readLabel } from '../../lib/discovery/label.js';
import { candidateBlockSizes, locateMetadata } from '../../lib/meta/locate.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { poolBlockAt } from '../helpers/pool.js';

const BLOCK = 4096;
const SPARE_BYTES = 2 * 1024 * 1024;
const LAYOUT = spareLayout(SPARE_BYTES, BLOCK);
const IDENTITY = { uuid: '5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d', name: 'v', blockSize: BLOCK, mainBytes: 64 * 1024 * 1024, spareBytes: SPARE_BYTES };

/** A spare holding five good copies whose reads and writes fail, once armed, with `fail()`. */
class FailingDevice implements BlockDevice {
  readonly name = 'failing';
  readonly inner = new MemoryDevice('inner', SPARE_BYTES);
  fail: (() => Error) | undefined;
  readonly sizeBytes = SPARE_BYTES;
  read(buf: Buffer, byteOffset: number): void {
    if (this.fail) throw this.fail();
    this.inner.read(buf, byteOffset);
  }
  write(buf: Buffer, byteOffset: number): void {
    if (this.fail) throw this.fail();
    this.inner.write(buf, byteOffset);
  }
  flush(): void {}
  close(): void {}
}

const disk = (): Error => ioError('read', 'failing');
const bug = (): Error => new TypeError('a bug in a layer below');

function spare(): { dev: FailingDevice; slots: SlotSet; state: MetaState } {
  const dev = new FailingDevice();
  const slots = new SlotSet(dev, LAYOUT);
  const entries: SlotEntry[] = [1, 2, 3].map((n) => ({ mainBlock: n, spareBlock: poolBlockAt(LAYOUT, n), createdAt: 1700000000000 + n, reason: 'manual', state: 'remapped', lostSectors: 0 }));
  const state = new MetaState(IDENTITY, LAYOUT, 7, entries);
  expect(slots.writeAll(state)).toEqual([]);
  return { dev, slots, state };
}

describe('device errors in slot, header and label reads', () => {
  it('a disk error makes a copy invalid ("read error"), a failed write slot, and no header or label', () => {
    const { dev, slots, state } = spare();
    dev.fail = disk;
    expect(slots.peekHeader(0)).toBeUndefined();
    expect(slots.read(0)).toMatchObject({ valid: false, reason: expect.stringMatching(/^read error: EIO/) as unknown });
    expect(slots.compare(1, state)).toMatchObject({ valid: false, reason: expect.stringMatching(/^read error: EIO/) as unknown });
    expect(slots.writeAll(state)).toEqual([0, 1, 2, 3, 4]);
    expect(slots.writeUpdate(state, [0])).toEqual([0, 1, 2, 3, 4]);
    expect(candidateBlockSizes(dev)).toEqual([]);
    expect(locateMetadata(dev)).toBeUndefined();
    expect(readLabel(dev)).toBeUndefined();
  });

  it('any other exception propagates: it is a bug, not bad metadata', () => {
    const { dev, slots, state } = spare();
    dev.fail = bug;
    expect(() => slots.peekHeader(0)).toThrow(TypeError);
    expect(() => slots.read(0)).toThrow(TypeError);
    expect(() => slots.compare(1, state)).toThrow(TypeError);
    expect(() => slots.writeAll(state)).toThrow(TypeError);
    expect(() => slots.writeUpdate(state, [0])).toThrow(TypeError);
    expect(() => candidateBlockSizes(dev)).toThrow(TypeError);
    expect(() => locateMetadata(dev)).toThrow(TypeError);
    expect(() => readLabel(dev)).toThrow(TypeError);
  });

  it('a bug after the header was read (in the entry pages) propagates too', () => {
    const { dev, slots, state } = spare();
    let reads = 0;
    dev.fail = undefined;
    const read = dev.read.bind(dev);
    dev.read = (buf, byteOffset) => {
      if (++reads > 2) throw bug();
      read(buf, byteOffset);
    };
    expect(() => slots.read(0)).toThrow(TypeError);
    reads = 0;
    expect(() => slots.compare(0, state)).toThrow(TypeError);
  });

  it('the good copies still read as valid when nothing fails', () => {
    const { dev, slots, state } = spare();
    expect(slots.read(0).valid).toBe(true);
    expect(slots.compare(1, state).matches).toBe(true);
    expect(locateMetadata(dev)?.newest.index).toBe(0);
  });
});
