/**
 * Fuzzing the metadata readers: slots and labels are mutated (random bytes,
 * bit flips, header and entry fields overwritten with valid and invalid
 * values, CRCs recomputed or not), then read by the real code (locate,
 * reconcile, readLabel). Asserted for every case: nothing throws but a
 * RemapfsError; the work is bounded (bytes read, counted); anything adopted
 * passes the rules as checked by the independent spec reader
 * (tests/helpers/spec-reader.ts, written from docs/format.md), and the two
 * readers agree on what is adopted. The seed is printed; FUZZ_SEED repeats
 * a run, FUZZ_CASES changes its length.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BlockDevice } from '../../lib/block/device.js';
import { MemoryDevice } from '../../lib/block/memory-device.js';
import { RemapfsError } from '../../lib/errors.js';
import { encodeLabel } from '../../lib/format/label-codec.js';
import { readLabel } from '../../lib/discovery/label.js';
import { crc32, headerCrc, HEADER_CRC_OFFSET, type SlotEntry } from '../../lib/format/slot-codec.js';
import { locateMetadata } from '../../lib/meta/locate.js';
import { identityOf, reconcile } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { slotHeaderRegionBytes, SLOT_HEADER_BYTES, SLOT_PAGE_BYTES, spareLayout, type SpareLayout } from '../../lib/format/layout.js';
import { type PairRecord, Store } from '../../lib/store/db.js';
import { poolBlockAt } from '../helpers/pool.js';
import { type SpecEntry, specReadLabel, specReadSpare, specTableProblem } from '../helpers/spec-reader.js';

const CASES = Number(process.env.FUZZ_CASES ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2147483647);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Counts the bytes read through it: the work bound of a case. */
class CountingDevice implements BlockDevice {
  bytesRead = 0;
  constructor(readonly next: BlockDevice) {}
  get name(): string {
    return this.next.name;
  }
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(buf: Buffer, off: number): void {
    this.bytesRead += buf.length;
    this.next.read(buf, off);
  }
  write(buf: Buffer, off: number): void {
    this.next.write(buf, off);
  }
  flush(): void {}
  close(): void {}
}

interface World {
  blockSize: number;
  spareBytes: number;
  mainBytes: number;
  layout: SpareLayout;
  pristine: Buffer;
  entries: SlotEntry[];
  pair: PairRecord;
  store: Store;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function makeWorld(blockSize: number, spareBytes: number, mainBytes: number, n: number): World {
  const layout = spareLayout(spareBytes, blockSize);
  const V = Math.floor(mainBytes / blockSize);
  const entries: SlotEntry[] = [{ mainBlock: V - 1, spareBlock: poolBlockAt(layout, 0), createdAt: 1700000000000, reason: 'label', state: 'remapped', lostSectors: 0 }];
  for (let i = 1; i < n; i++) {
    if (i % 7 === 3) entries.push({ mainBlock: -1, spareBlock: poolBlockAt(layout, i), createdAt: 1700000000000 + i, reason: 'none', state: 'retired', lostSectors: 0 });
    else if (i % 5 === 2) entries.push({ mainBlock: 2 * i, spareBlock: -1, createdAt: 1700000000000 + i, reason: 'read-error', state: 'pending', lostSectors: 1 });
    else entries.push({ mainBlock: 2 * i, spareBlock: poolBlockAt(layout, i), createdAt: 1700000000000 + i, reason: 'write-error', state: 'remapped', lostSectors: i % 2 });
  }
  const store = Store.open(path.join(dir, `fuzz-${blockSize}.db`), { create: true });
  const pair = store.pairs.insert({ name: `fuzz${blockSize}`, uuid: blockSize === 4096 ? '3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c' : '7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a090', mainPath: '/dev/null', sparePath: '/dev/null', blockSize, mainBytes, spareBytes, createdAt: 1, metaSeq: 10 });
  store.transaction(() => {
    const retired = entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt }));
    const remaps = entries.filter((e) => e.state !== 'retired').map((e) => ({ mainBlock: e.mainBlock, spareBlock: e.spareBlock, reason: e.reason as never, state: e.state as never, lostSectors: e.lostSectors, createdAt: e.createdAt }));
    store.remaps.replaceTable(pair.id, remaps, retired, 10);
  });
  const dev = new MemoryDevice('spare', spareBytes);
  expect(new SlotSet(dev, layout).writeAll(new MetaState(identityOf(pair), layout, 10, entries))).toEqual([]);
  return { blockSize, spareBytes, mainBytes, layout, pristine: Buffer.from(dev.data), entries, pair, store };
}

/** Recomputes the page CRCs, the table and the header CRC of slot i as the header's counts say. */
function reseal(data: Buffer, w: World, i: number): void {
  const off = (w.layout.slots[i]?.startBlock ?? 0) * w.blockSize;
  const pagesOff = off + slotHeaderRegionBytes(w.layout.slotEntryCapacity);
  const pageCount = data.readUInt32LE(off + 96);
  const maxPages = Math.min(pageCount, Math.floor((w.layout.slotBlocks * w.blockSize - slotHeaderRegionBytes(w.layout.slotEntryCapacity)) / SLOT_PAGE_BYTES), 1024);
  for (let p = 0; p < maxPages; p++) data.writeUInt32LE(crc32(data.subarray(pagesOff + p * SLOT_PAGE_BYTES, pagesOff + (p + 1) * SLOT_PAGE_BYTES)), off + SLOT_HEADER_BYTES + 4 * p);
  const tableLen = Math.min(4 * pageCount, slotHeaderRegionBytes(w.layout.slotEntryCapacity) - SLOT_HEADER_BYTES);
  const head = data.subarray(off, off + SLOT_HEADER_BYTES);
  head.writeUInt32LE(headerCrc(head, data.subarray(off + SLOT_HEADER_BYTES, off + SLOT_HEADER_BYTES + tableLen)), HEADER_CRC_OFFSET);
}

function writeU64(b: Buffer, off: number, v: bigint): void {
  b.writeBigUInt64LE(BigInt.asUintN(64, v), off);
}

const HEADER_FIELDS: Array<[number, 4 | 8]> = [
  [8, 4], [12, 4], [32, 8], [40, 8], [48, 4], [52, 4], [56, 4], [60, 4], [64, 8], [72, 8], [80, 8], [88, 8], [96, 4], [100, 4],
];
const BAD_NAMES = ['a/b', '../x', '.remapfs', '', 'x\ny', '-x', 'é', 'a'.repeat(64), 'ok-name'];

function interesting(rnd: () => number, w: World): bigint {
  const S = BigInt(w.layout.spareBlocks);
  const picks = [0n, 1n, -1n, 2n ** 53n, 2n ** 53n - 1n, 2n ** 32n, 2n ** 63n, S, S - 1n, S + 1n, 10n, 11n, 1000n, BigInt(w.spareBytes), BigInt(w.spareBytes) + 1n, BigInt(w.mainBytes), 4096n, 512n, BigInt(Math.floor(rnd() * 2 ** 32))];
  return picks[Math.floor(rnd() * picks.length)] as bigint;
}

/** One mutation of the spare image; returns a label for failure messages. */
function mutate(data: Buffer, w: World, rnd: () => number): string {
  const pick = (n: number): number => Math.floor(rnd() * n);
  const slotOff = (i: number): number => (w.layout.slots[i]?.startBlock ?? 0) * w.blockSize;
  const slotLen = w.layout.slotBlocks * w.blockSize;
  const pagesRel = slotHeaderRegionBytes(w.layout.slotEntryCapacity);
  const all = rnd() < 0.5;
  const targets = all ? [0, 1, 2, 3, 4] : [pick(5)];
  const kind = pick(5);
  const bump = rnd() < 0.7;
  for (const i of targets) {
    const off = slotOff(i);
    if (kind === 0) {
      const at = off + (rnd() < 0.5 ? pick(SLOT_HEADER_BYTES + 64) : pagesRel + pick(slotLen - pagesRel));
      const len = 1 + pick(64);
      for (let k = 0; k < len && at + k < data.length; k++) data[at + k] = pick(256);
    } else if (kind === 1) {
      for (let k = 0, n = 1 + pick(8); k < n; k++) {
        const at = off + (rnd() < 0.5 ? pick(SLOT_HEADER_BYTES) : pagesRel + pick(4096));
        data[at] = (data[at] as number) ^ (1 << pick(8));
      }
    } else if (kind === 2) {
      const r = pick(4);
      if (r === 0) {
        const name = Buffer.alloc(64);
        name.write(BAD_NAMES[pick(BAD_NAMES.length)] as string, 'utf8');
        name.copy(data, off + 104);
      } else if (r === 1) {
        const u = [Buffer.alloc(16), Buffer.alloc(16, 0xff), Buffer.from('3F2A1B0C9D8E4F7A8B6C5D4E3F2A1B0C', 'hex'), Buffer.from(Array.from({ length: 16 }, () => pick(256)))][pick(4)] as Buffer;
        u.copy(data, off + 16);
      } else {
        const [fo, size] = HEADER_FIELDS[pick(HEADER_FIELDS.length)] as [number, 4 | 8];
        const v = interesting(rnd, w);
        if (size === 8) writeU64(data, off + fo, v);
        else data.writeUInt32LE(Number(BigInt.asUintN(32, v)), off + fo);
      }
    } else if (kind === 3 || kind === 4) {
      const count = Number(data.readBigUInt64LE(off + 88) % 100000n);
      const k = count > 0 ? pick(Math.min(count, 4096)) : 0;
      const eo = off + pagesRel + 32 * k;
      if (eo + 32 > off + slotLen) continue;
      const field = pick(7);
      const other = w.entries[pick(w.entries.length)] as SlotEntry;
      const slotBlock = BigInt((w.layout.slots[pick(5)]?.startBlock ?? 0) + pick(w.layout.slotBlocks));
      if (field === 0) writeU64(data, eo, [BigInt(other.mainBlock), -1n, BigInt(Math.floor(w.mainBytes / w.blockSize)), interesting(rnd, w)][pick(4)] as bigint);
      else if (field === 1) writeU64(data, eo + 8, [BigInt(other.spareBlock), slotBlock, -1n, BigInt(w.layout.spareBlocks), interesting(rnd, w)][pick(5)] as bigint);
      else if (field === 2) writeU64(data, eo + 16, interesting(rnd, w));
      else if (field === 3) data[eo + 24] = rnd() < 0.7 ? pick(8) : pick(256);
      else if (field === 4) data[eo + 25] = rnd() < 0.7 ? pick(4) : pick(256);
      else if (field === 5) data.writeUInt16LE(rnd() < 0.5 ? pick(10) : pick(65536), eo + 26);
      else data.writeUInt32LE(pick(2 ** 32), eo + 28); // reserved: must change nothing
      if (kind === 4 && rnd() < 0.5) writeU64(data, off + 88, BigInt(Math.min(count + 1, w.layout.slotEntryCapacity)));
      if (kind === 4) data.writeUInt32LE(Math.ceil(Number(data.readBigUInt64LE(off + 88) % 2n ** 32n) / 128), off + 96);
    }
    // Kinds 2-4 make the change look legitimate: a higher sequence and correct CRCs.
    if (kind >= 2 && bump) writeU64(data, off + 32, 12n);
    if (kind >= 2 && rnd() < 0.85) reseal(data, w, i);
  }
  return `kind ${kind} slots ${targets.join(',')}`;
}

function memReader(mem: MemoryDevice): (o: number, l: number) => Buffer {
  return (o, l) => {
    if (o + l > mem.data.length) throw new Error('read past the end');
    return Buffer.from(mem.data.subarray(o, o + l));
  };
}

function toSpec(entries: readonly SlotEntry[]): SpecEntry[] {
  return entries.map((e) => ({ mainBlock: e.mainBlock < 0 ? null : e.mainBlock, spareBlock: e.spareBlock < 0 ? null : e.spareBlock, time: e.createdAt, reason: e.reason, state: e.state, lostSectors: e.lostSectors }));
}

describe(`metadata fuzz (seed ${SEED}, ${CASES} cases; FUZZ_SEED=${SEED} repeats it)`, () => {
  beforeAll(() => process.stdout.write(`meta-fuzz: seed ${SEED}\n`));

  it('no crash, no unbounded work, nothing invalid adopted, and the spec reader agrees', () => {
    const worlds = [makeWorld(4096, 1024 * 1024, 8 * 1024 * 1024, 150), makeWorld(512, 256 * 1024, 1024 * 1024, 300)];
    const rnd = prng(SEED);
    const rssBefore = process.memoryUsage().rss;
    let adopted = 0;
    let refused = 0;
    for (let c = 0; c < CASES; c++) {
      const w = worlds[c % worlds.length] as World;
      const mem = new MemoryDevice('spare', w.spareBytes);
      w.pristine.copy(mem.data);
      const what = mutate(mem.data, w, rnd);
      const ctx = `case ${c} (${what}, seed ${SEED})`;
      const dev = new CountingDevice(mem);
      let found: ReturnType<typeof locateMetadata>;
      try {
        found = locateMetadata(dev);
      } catch (err) {
        throw new Error(`${ctx}: locateMetadata threw ${String(err)}`);
      }
      // Work bound: every block size's five headers, then at most a few full reads of each slot.
      expect({ ctx, within: dev.bytesRead <= 8 * 5 * 512 + 12 * 5 * w.layout.slotBlocks * w.blockSize }).toEqual({ ctx, within: true });
      const spec = specReadSpare(memReader(mem), w.spareBytes);
      if (found) {
        adopted++;
        const entries = toSpec(found.state.entries);
        expect({ ctx, problem: specTableProblem(entries, found.slots.layout.spareBlocks, found.slots.layout.blockSize, found.newest.header.mainBytes) }).toEqual({ ctx, problem: undefined });
        expect({ ctx, slot: found.newest.index, seq: found.newest.sequence, entries, slots: found.reports.map((r) => (r.valid ? (r.matches ? 'current' : 'stale') : 'invalid')) }).toEqual({ ctx, slot: spec?.adoptedSlot, seq: spec?.sequence, entries: spec?.entries, slots: spec?.slots });
      } else {
        refused++;
        expect({ ctx, spec }).toEqual({ ctx, spec: undefined });
      }
      // The known pair's open path: never adopts an invalid copy either.
      const counted = new CountingDevice(mem);
      try {
        const r = reconcile(w.store, w.pair, new SlotSet(counted, w.layout), { write: false });
        const known = specReadSpare(memReader(mem), w.spareBytes, { uuid: w.pair.uuid, mainBytes: w.mainBytes, blockSize: w.blockSize });
        expect({ ctx, problem: specTableProblem(toSpec(r.state.entries), w.layout.spareBlocks, w.blockSize, w.mainBytes) }).toEqual({ ctx, problem: undefined });
        if (r.source === 'slots') expect({ ctx, slot: r.sourceSlot, seq: r.sequence }).toEqual({ ctx, slot: known?.adoptedSlot, seq: known?.sequence });
        else expect({ ctx, source: r.source, knownSeq: known && known.sequence > 10 ? known.sequence : undefined }).toEqual({ ctx, source: 'database', knownSeq: undefined });
      } catch (err) {
        if (!(err instanceof RemapfsError)) throw new Error(`${ctx}: reconcile threw ${String(err)}`);
        expect(err.message.split('\n')).toHaveLength(1);
      }
      expect({ ctx, within: counted.bytesRead <= 5 * 512 + 12 * 5 * w.layout.slotBlocks * w.blockSize }).toEqual({ ctx, within: true });
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    process.stdout.write(`meta-fuzz: ${CASES} slot cases, ${adopted} adopted, ${refused} refused, rss growth ${(rssGrowth / 1048576).toFixed(1)} MiB\n`);
    expect(adopted).toBeGreaterThan(CASES / 10);
    expect(refused).toBeGreaterThan(CASES / 10);
    expect(rssGrowth).toBeLessThan(256 * 1024 * 1024);
    for (const w of worlds) w.store.close();
  });

  it('labels: mutated labels are read only when valid, and the spec reader agrees', () => {
    const rnd = prng(SEED ^ 0x5a5a5a5a);
    const mainBytes = 1024 * 1024;
    const good = encodeLabel({ uuid: '3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c', name: 'lab', blockSize: 4096, mainBytes, labelBlock: mainBytes / 4096 - 1, createdAt: 1700000000000 });
    let accepted = 0;
    for (let c = 0; c < CASES; c++) {
      const l = Buffer.from(good);
      const kind = Math.floor(rnd() * 3);
      if (kind === 0) for (let k = 0, n = 1 + Math.floor(rnd() * 4); k < n; k++) l[Math.floor(rnd() * 512)] = Math.floor(rnd() * 256);
      else {
        const fields = [12, 16, 32, 40, 48, 56, 130];
        const f = fields[Math.floor(rnd() * fields.length)] as number;
        if (f === 56) {
          l.fill(0, 56, 120);
          l.write(BAD_NAMES[Math.floor(rnd() * BAD_NAMES.length)] as string, 56, 'utf8');
        } else if (f === 12) l.writeUInt32LE([512, 1024, 4096, 3000, 0][Math.floor(rnd() * 5)] as number, 12);
        else if (f === 16) (rnd() < 0.5 ? Buffer.alloc(16) : Buffer.from(Array.from({ length: 16 }, () => Math.floor(rnd() * 256)))).copy(l, 16);
        else if (f === 130) l.writeUInt32LE(Math.floor(rnd() * 2 ** 32), 130); // reserved
        else writeU64(l, f, [0n, 2n ** 53n, BigInt(mainBytes), BigInt(mainBytes / 4096 - 1), -1n][Math.floor(rnd() * 5)] as bigint);
        if (kind === 2) l.writeUInt32LE(crc32(l.subarray(0, 508)), 508);
      }
      const main = new MemoryDevice('main', mainBytes);
      l.copy(main.data, mainBytes - 4096);
      let got: ReturnType<typeof readLabel>;
      try {
        got = readLabel(main);
      } catch (err) {
        throw new Error(`label case ${c} (seed ${SEED}): readLabel threw ${String(err)}`);
      }
      const spec = specReadLabel((o, len) => Buffer.from(main.data.subarray(o, o + len)), mainBytes);
      expect({ c, got: got ? { uuid: got.uuid, name: got.name, blockSize: got.blockSize } : undefined }).toEqual({ c, got: spec });
      if (got) accepted++;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(CASES);
  });

  it('a crafted header on a 4 GiB sparse spare costs no more than its real size allows', () => {
    // A sparse device: 4 GiB of zeros but for what is written.
    const pages = new Map<number, Buffer>();
    const sparse: BlockDevice & { bytesRead: number } = {
      name: 'sparse',
      sizeBytes: 4 * 1024 ** 3,
      bytesRead: 0,
      read(buf, off) {
        this.bytesRead += buf.length;
        for (let done = 0; done < buf.length; ) {
          const p = Math.floor((off + done) / 4096);
          const at = (off + done) % 4096;
          const n = Math.min(4096 - at, buf.length - done);
          const page = pages.get(p);
          if (page) page.copy(buf, done, at, at + n);
          else buf.fill(0, done, done + n);
          done += n;
        }
      },
      write(buf, off) {
        for (let done = 0; done < buf.length; ) {
          const p = Math.floor((off + done) / 4096);
          const at = (off + done) % 4096;
          const n = Math.min(4096 - at, buf.length - done);
          const page = pages.get(p) ?? Buffer.alloc(4096);
          buf.copy(page, at, done, done + n);
          pages.set(p, page);
          done += n;
        }
      },
      flush() {},
      close() {},
    };
    const layout = spareLayout(sparse.sizeBytes, 512);
    const identity = { uuid: '3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c', name: 'big', blockSize: 512, mainBytes: 2 ** 40, spareBytes: sparse.sizeBytes };
    new SlotSet(sparse, layout).writeAll(new MetaState(identity, layout, 3, []));
    const head = Buffer.alloc(512);
    for (const [count, label] of [[2 ** 40, 'a count far above the capacity'], [layout.slotEntryCapacity, 'a full-capacity count over empty pages']] as const) {
      for (let i = 0; i < 5; i++) {
        const off = (layout.slots[i]?.startBlock ?? 0) * 512;
        sparse.read(head, off);
        writeU64(head, 88, BigInt(count));
        head.writeUInt32LE(Math.ceil(count / 128) % 2 ** 32, 96);
        writeU64(head, 32, 9n);
        // A correct header CRC (the table is all zeros), so the copy is refused only at its first page.
        head.writeUInt32LE(headerCrc(head, Buffer.alloc(4 * (Math.ceil(count / 128) % 2 ** 32))), HEADER_CRC_OFFSET);
        sparse.write(head, off);
      }
      sparse.bytesRead = 0;
      const rssBefore = process.memoryUsage().rss;
      const found = locateMetadata(sparse);
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      process.stdout.write(`meta-fuzz: 4 GiB spare, ${label}: ${found ? 'adopted' : 'refused'}, ${(sparse.bytesRead / 1048576).toFixed(1)} MiB read, rss growth ${(rssGrowth / 1048576).toFixed(1)} MiB\n`);
      expect(found).toBeUndefined();
      // At most the headers, the page CRC tables and one 1 MiB chunk per copy tried, per block size tried.
      expect(sparse.bytesRead).toBeLessThan(2 * 5 * (2 * 1024 * 1024 + 512));
    }
  });
});
