/**
 * Scale: a table of 1,000,000 entries on a real (sparse) spare file is written,
 * read back and verified, and a single-entry update writes the same few
 * kilobytes as on an empty table.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileDevice } from '../../lib/block/file-device.js';
import type { SlotEntry } from '../../lib/format/slot-codec.js';
import { fingerprint } from '../../lib/meta/reconcile.js';
import { SlotSet } from '../../lib/meta/slots.js';
import { MetaState } from '../../lib/meta/state.js';
import { spareLayout } from '../../lib/format/layout.js';
import { poolBlockAt } from '../helpers/pool.js';

const ENTRIES = 1_000_000;
const BLOCK = 4096;
const SPARE_BYTES = 4 * 1024 * 1024 * 1024;

describe('metadata at scale', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-scale-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it(`writes, reopens and verifies ${ENTRIES} entries; an update stays small`, () => {
    const file = path.join(dir, 'spare.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, SPARE_BYTES);
    const layout = spareLayout(SPARE_BYTES, BLOCK);
    expect(layout.slotEntryCapacity).toBeGreaterThanOrEqual(ENTRIES);
    const identity = { uuid: '9c7b5a3e-1d2f-4e6a-8b9c-0d1e2f3a4b5c', name: 'scale', blockSize: BLOCK, mainBytes: 64 * 1024 * 1024 * 1024, spareBytes: SPARE_BYTES };
    const entries: SlotEntry[] = [];
    for (let i = 0; i < ENTRIES; i++) entries.push({ mainBlock: 7 * i, spareBlock: poolBlockAt(layout, i), createdAt: 1700000000000 + i, reason: 'write-error', state: 'remapped', lostSectors: 0 });
    const t0 = Date.now();
    const state = new MetaState(identity, layout, 1, entries);
    const dev = FileDevice.open(file, { mode: 'buffered' });
    try {
      const slots = new SlotSet(dev, layout);
      expect(slots.writeAll(state)).toEqual([]);
      const fullBytes = slots.lastWriteBytes;
      const t1 = Date.now();
      const reports = new SlotSet(dev, layout).readAll({ uuid: identity.uuid });
      const t2 = Date.now();
      const expected = fingerprint(entries);
      for (const r of reports) {
        expect(r.valid).toBe(true);
        expect(r.entries?.length).toBe(ENTRIES);
        expect(fingerprint(r.entries ?? [])).toBe(expected);
      }

      // The open path: one copy read with every rule and kept, four compared with it by content.
      const t3 = Date.now();
      const opened = new SlotSet(dev, layout);
      const adopted = opened.read(0, { uuid: identity.uuid, mainBytes: identity.mainBytes }, 'pages');
      expect(adopted.valid).toBe(true);
      const inForce = MetaState.fromPages(identity, layout, 1, ENTRIES, adopted.pages as Buffer);
      for (let i = 1; i < 5; i++) expect(opened.compare(i, inForce, { uuid: identity.uuid, mainBytes: identity.mainBytes })).toMatchObject({ valid: true, matches: true, canonical: true });
      const openMs = Date.now() - t3;

      const page = state.upsert({ mainBlock: 3, spareBlock: poolBlockAt(layout, ENTRIES + 5), createdAt: 1800000000000, reason: 'manual', state: 'remapped', lostSectors: 0 });
      state.sequence++;
      expect(slots.writeUpdate(state, [page])).toEqual([]);
      const updateBytes = slots.lastWriteBytes;
      expect(updateBytes).toBe(5 * (4096 + 512 + 512));
      const after = new SlotSet(dev, layout).readAll({ uuid: identity.uuid });
      expect(after.every((r) => r.valid && r.sequence === 2 && r.entries?.length === ENTRIES + 1)).toBe(true);
      process.stdout.write(
        `metadata scale: ${ENTRIES} entries; full write ${(fullBytes / 1048576).toFixed(1)} MiB in ${t1 - t0} ms; ` +
          `read+verify of 5 slots ${t2 - t1} ms; open path (1 copy checked, 4 compared) ${openMs} ms; single-entry update ${updateBytes} bytes\n`,
      );
    } finally {
      dev.close();
    }
  });
});
