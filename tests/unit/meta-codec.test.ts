import CRC32 from 'crc-32';
import * as fs from 'fs';
import * as path from 'path';
import { FaultDevice } from '../../lib/block/fault-device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { crc32, crc32Continue, decodeHeaderFields, encodeEntry, decodeEntry, FORMAT_VERSION, HEADER_CRC_OFFSET, headerCrc, type SlotEntry } from '../../lib/format/slot-codec.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState, type PairIdentity } from '../../lib/meta/state.js';
import { SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, spareLayout } from '../../lib/format/layout.js';
import { poolBlockAt } from '../helpers/pool.js';
import { match } from '../helpers/match.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const BLOCK = 4096;
const SPARE_BYTES = 4 * 1024 * 1024;
const identity: PairIdentity = { uuid: '0b1e8d7c-2f4a-4c3b-9d8e-7f6a5b4c3d2e', name: 'codec', blockSize: BLOCK, mainBytes: 64 * 1024 * 1024, spareBytes: SPARE_BYTES };

function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 0x100000000;
  };
}

const LAYOUT = spareLayout(SPARE_BYTES, BLOCK);

function sampleEntries(n: number): SlotEntry[] {
  const out: SlotEntry[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 17 === 16) out.push({ mainBlock: -1, spareBlock: poolBlockAt(LAYOUT, i), createdAt: 1700000000000 + i, reason: 'none', state: 'retired', lostSectors: 0 });
    else if (i % 11 === 10) out.push({ mainBlock: 5000 + i, spareBlock: -1, createdAt: 1700000000000 + i, reason: 'read-error', state: 'pending', lostSectors: 3 });
    else out.push({ mainBlock: 3 * i, spareBlock: poolBlockAt(LAYOUT, i), createdAt: 1700000000000 + i, reason: 'manual', state: 'remapped', lostSectors: i % 3 });
  }
  return out;
}

function freshSlots(entries: SlotEntry[], sequence = 7): { dev: MemoryDevice; slots: SlotSet; state: MetaState } {
  const layout = spareLayout(SPARE_BYTES, BLOCK);
  const dev = new MemoryDevice('spare', SPARE_BYTES);
  const slots = new SlotSet(dev, layout);
  const state = new MetaState(identity, layout, sequence, entries);
  expect(slots.writeAll(state)).toEqual([]);
  return { dev, slots, state };
}

describe('CRC32 (IEEE: zlib where Node has it, else the crc-32 package)', () => {
  it.each([
    ['123456789', 0xcbf43926],
    ['', 0x00000000],
    ['a', 0xe8b7be43],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ])('crc32(%j) = %s', (text, expected) => {
    expect(crc32(Buffer.from(text, 'ascii'))).toBe(expected);
  });

  it('continues across chunks', () => {
    const all = Buffer.from('123456789');
    expect(crc32Continue(crc32(all.subarray(0, 4)), all.subarray(4))).toBe(0xcbf43926);
  });

  it('agrees with the crc-32 package on random data, from any seed', () => {
    let x = 12345;
    const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 50; i++) {
      const data = Buffer.alloc(next() % 9000);
      for (let j = 0; j < data.length; j++) data[j] = next() & 0xff;
      const seed = next();
      expect(crc32(data)).toBe(CRC32.buf(data) >>> 0);
      expect(crc32Continue(seed, data)).toBe(CRC32.buf(data, seed | 0) >>> 0);
    }
  });

  it('publishes the same test vector in docs/format.md', () => {
    const doc = fs.readFileSync(path.resolve(HERE_DIR, '../../../docs/format.md'), 'utf8');
    expect(doc).toContain('"123456789"');
    expect(doc.toLowerCase()).toContain('0xcbf43926');
  });
});

describe('entry codec', () => {
  it.each(sampleEntries(20).map((e) => [e.state, e] as const))('round-trips a %s entry', (_state, e) => {
    const buf = Buffer.alloc(32);
    encodeEntry(e, buf, 0);
    expect(decodeEntry(buf, 0)).toEqual(e);
  });

  it('round-trips block numbers above 2^32', () => {
    const e: SlotEntry = { mainBlock: 2 ** 40 + 5, spareBlock: 2 ** 33 + 1, createdAt: 1800000000000, reason: 'scan-slow', state: 'remapped', lostSectors: 0 };
    const buf = Buffer.alloc(32);
    encodeEntry(e, buf, 0);
    expect(decodeEntry(buf, 0)).toEqual(e);
  });

  it('reads an all-zero entry as empty', () => {
    expect(decodeEntry(Buffer.alloc(32), 0)).toBeUndefined();
  });
});

describe('slot round trip and damage detection', () => {
  it('writes five identical valid slots and reads the table back', () => {
    const entries = sampleEntries(300);
    const { slots } = freshSlots(entries);
    const reports = slots.readAll({ uuid: identity.uuid });
    expect(reports.map((r) => r.valid)).toEqual([true, true, true, true, true]);
    for (const r of reports) {
      expect(r.sequence).toBe(7);
      expect(r.entries).toEqual(entries);
      expect(r.header?.name).toBe('codec');
    }
  });

  it('places slots at distinct, non-adjacent offsets', () => {
    const { slots } = freshSlots([]);
    const offsets = [0, 1, 2, 3, 4].map((i) => slots.slotOffset(i));
    for (let i = 1; i < 5; i++) expect((offsets[i] as number) - (offsets[i - 1] as number)).toBeGreaterThan(slots.slotLength());
  });

  it('detects every single-bit flip in the header and the page CRC table', () => {
    const { dev, slots, state } = freshSlots(sampleEntries(300));
    const region = SLOT_HEADER_BYTES + 4 * state.pageCount;
    const off = slots.slotOffset(2);
    let undetected = 0;
    for (let byte = 0; byte < region; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        dev.data[off + byte] = (dev.data[off + byte] as number) ^ (1 << bit);
        if (slots.read(2, { uuid: identity.uuid }).valid) undetected++;
        dev.data[off + byte] = (dev.data[off + byte] as number) ^ (1 << bit);
      }
    }
    expect(undetected).toBe(0);
    expect(slots.read(2, { uuid: identity.uuid }).valid).toBe(true);
  });

  it('detects a large sample of bit flips in the entry pages', () => {
    const { dev, slots, state } = freshSlots(sampleEntries(300));
    const off = slots.slotOffset(4) + slots.pagesOffset;
    const pageBytes = state.pageCount * SLOT_PAGE_BYTES;
    const rnd = seeded(42);
    let undetected = 0;
    for (let k = 0; k < 3000; k++) {
      const byte = Math.floor(rnd() * pageBytes);
      const bit = Math.floor(rnd() * 8);
      dev.data[off + byte] = (dev.data[off + byte] as number) ^ (1 << bit);
      const r = slots.read(4, { uuid: identity.uuid });
      if (r.valid) undetected++;
      else expect(r.reason).toMatch(/page \d+ CRC mismatch/);
      dev.data[off + byte] = (dev.data[off + byte] as number) ^ (1 << bit);
    }
    expect(undetected).toBe(0);
  });

  it('rejects a wrong magic, a wrong version and a truncated header with clear reasons', () => {
    const { dev, slots, state } = freshSlots(sampleEntries(10));
    const head = Buffer.from(dev.data.subarray(0, SLOT_HEADER_BYTES));
    expect(decodeHeaderFields(head.subarray(0, 100))).toEqual({ ok: false, reason: match.containing('truncated header') });

    const magic = Buffer.from(head);
    magic.write('XXXXXXXX', 0, 'ascii');
    expect(decodeHeaderFields(magic)).toEqual({ ok: false, reason: match.containing('bad magic') });

    // A future version with a correct CRC: rejected for its version, not its CRC.
    const version = Buffer.from(head);
    version.writeUInt32LE(FORMAT_VERSION + 1, 8);
    version.writeUInt32LE(headerCrc(version, state.table()), HEADER_CRC_OFFSET);
    version.copy(dev.data, 0);
    const r = slots.read(0);
    expect(r.valid).toBe(false);
    expect(r.reason).toContain(`unsupported format version ${FORMAT_VERSION + 1}`);
  });

  it('rejects a slot cut short by the end of the device', () => {
    const { dev, slots } = freshSlots(sampleEntries(300));
    const cut = new MemoryDevice('short', slots.slotOffset(4) + 1000);
    dev.data.copy(cut.data, 0, 0, cut.data.length);
    const short = new SlotSet(cut, slots.layout);
    // The layout (and so the expected spare size) is the full spare's, as for a pair whose device shrank.
    const r = short.read(4, { spareBytes: SPARE_BYTES });
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/read error|truncated/);
    expect(short.read(0, { spareBytes: SPARE_BYTES }).valid).toBe(true);
    expect(short.read(0).reason).toContain(`header says the spare has ${SPARE_BYTES} bytes`);
  });

  it('treats a bad sector inside a slot as an invalid slot; the others serve', () => {
    const { dev, slots } = freshSlots(sampleEntries(300));
    const faulty = new FaultDevice(dev);
    faulty.badSectors.add(slots.slotOffset(1) / 512 + 9);
    const reports = new SlotSet(faulty, slots.layout).readAll({ uuid: identity.uuid });
    expect(reports.map((r) => r.valid)).toEqual([true, false, true, true, true]);
    expect(reports[1]?.reason).toMatch(/read error.*EIO/);
  });

  it('rejects a slot of another pair, and a slot found at the wrong index', () => {
    const { dev, slots } = freshSlots(sampleEntries(5));
    expect(slots.read(1, { uuid: '11111111-2222-4333-8444-555555555555' }).reason).toContain('belongs to another pair');
    const len = slots.slotLength();
    dev.data.copy(dev.data, slots.slotOffset(3), slots.slotOffset(1), slots.slotOffset(1) + len);
    expect(slots.read(3).reason).toContain('header says slot 1');
  });

  it('an update writes bytes in proportion to the change', () => {
    const { slots, state } = freshSlots(sampleEntries(700));
    const page = state.upsert({ mainBlock: 12345, spareBlock: poolBlockAt(LAYOUT, 900), createdAt: 1, reason: 'manual', state: 'remapped', lostSectors: 0 });
    state.sequence++;
    expect(slots.writeUpdate(state, [page])).toEqual([]);
    // Per slot: one page, one table sector, one header sector.
    expect(slots.lastWriteBytes).toBe(5 * (SLOT_PAGE_BYTES + 512 + 512));
    const r = slots.readAll({ uuid: identity.uuid });
    expect(r.every((s) => s.valid && s.sequence === state.sequence && s.entries?.length === 701)).toBe(true);
  });
});
