/**
 * docs/format.md is complete enough to implement: for every pair made here
 * (real images, made and changed through the CLI or the real open path),
 * the second reader written only from the document (tests/helpers/
 * spec-reader.ts) finds the same table, sequence number, adopted slot and
 * slot states as `remapfs verify --json` and `remapfs status --json
 * --entries` report, and the same label.
 */
import * as fs from 'fs';
import { openPair } from '../../lib/pair/pair.js';
import { spareLayout } from '../../lib/format/layout.js';
import { Store } from '../../lib/store/db.js';
import type { VerifyReport } from '../../lib/meta/verify.js';
import { labPerTest } from '../helpers/lab-hooks.js';
import { poolBlockAt } from '../helpers/pool.js';
import { fileReader, specReadLabel, specReadSpare } from '../helpers/spec-reader.js';

const MiB = 1024 * 1024;

interface StatusJson {
  uuid: string;
  blockSize: number;
  entries: Array<{ mainBlock: number | null; spareBlock: number | null; state: string; reason: string; lostSectors: number; createdAt: number }>;
}

describe('a reader written from docs/format.md agrees with remapfs', () => {
  const lab = labPerTest();

  /** Compares the two readers; returns the adopted slot and the slot states. */
  function compare(what: string, name: string, main: string, spare: string): { adoptedSlot: number | undefined; slots: string[] | undefined } {
    const s = fileReader(spare);
    const m = fileReader(main);
    let table;
    let label;
    try {
      table = specReadSpare(s.read, s.sizeBytes);
      label = specReadLabel(m.read, m.sizeBytes);
    } finally {
      s.close();
      m.close();
    }
    const verify = JSON.parse(lab.cli(['verify', name, '--json']).stdout) as VerifyReport;
    const status = JSON.parse(lab.ok(['status', name, '--json', '--entries'])) as StatusJson;
    const key = (e: { mainBlock: number | null; spareBlock: number | null }): string => `${e.mainBlock ?? 'r'}:${e.spareBlock ?? 'p'}`;
    const sorted = <T extends { mainBlock: number | null; spareBlock: number | null }>(es: T[]): T[] => [...es].sort((a, b) => key(a).localeCompare(key(b)));
    expect({ what, source: verify.source }).toEqual({ what, source: 'slots' });
    expect({
      what,
      uuid: table?.uuid,
      name: table?.name,
      blockSize: table?.blockSize,
      sequence: table?.sequence,
      adoptedSlot: table?.adoptedSlot,
      slots: table?.slots,
      entries: sorted((table?.entries ?? []).map((e) => ({ mainBlock: e.mainBlock, spareBlock: e.spareBlock, state: e.state, reason: e.reason, lostSectors: e.lostSectors, createdAt: e.time }))),
      label,
    }).toEqual({
      what,
      uuid: status.uuid,
      name,
      blockSize: status.blockSize,
      sequence: verify.sequence,
      adoptedSlot: verify.sourceSlot,
      slots: verify.slots.map((x) => (x.valid ? (x.current ? 'current' : 'stale') : 'invalid')),
      entries: sorted(status.entries),
      label: { uuid: status.uuid, name, blockSize: status.blockSize },
    });
    return { adoptedSlot: table?.adoptedSlot, slots: table?.slots };
  }

  it('on fresh, remapped, pending, retired, damaged and other-block-size pairs', () => {
    // 1. A fresh pair (the label block's remap only), B = 4096.
    const m1 = lab.image('m1.img', 16 * MiB);
    const s1 = lab.image('s1.img', 2 * MiB);
    lab.ok(['init', 'fresh', '--main', m1, '--spare', s1]);
    compare('fresh', 'fresh', m1, s1);

    // 2. Remaps through the CLI.
    lab.ok(['remap', 'fresh', '0', '7', '8', '4000', '20000']);
    compare('remapped', 'fresh', m1, s1);

    // 3. A pending block and a retired spare block, committed through the real open path and journal.
    const store = Store.open(lab.dbPath, { create: false });
    try {
      const pair = store.pairs.get('fresh');
      if (!pair) throw new Error('no pair');
      const rt = openPair(store, pair);
      try {
        rt.journal.commitRemap({ mainBlock: 1234, spareBlock: -1, reason: 'read-error', state: 'pending', lostSectors: 3, createdAt: Date.now() });
        rt.journal.commitRemap({ mainBlock: 1500, spareBlock: -1, reason: 'imported', state: 'pending', lostSectors: 8, createdAt: Date.now() });
        rt.journal.commitRetired(poolBlockAt(spareLayout(pair.spareBytes, pair.blockSize), 200));
      } finally {
        rt.close();
      }
    } finally {
      store.close();
    }
    compare('pending and retired', 'fresh', m1, s1);

    // 4. Slot 0 damaged: B must be found from slots 1-4, and slot 1 is adopted.
    const fd = fs.openSync(s1, 'r+');
    try {
      fs.writeSync(fd, Buffer.alloc(512, 0xa5), 0, 512, 0);
    } finally {
      fs.closeSync(fd);
    }
    expect(compare('slot 0 damaged', 'fresh', m1, s1)).toEqual({ adoptedSlot: 1, slots: ['invalid', 'current', 'current', 'current', 'current'] });
    lab.ok(['repair', 'fresh']);
    compare('repaired', 'fresh', m1, s1);

    // 5. Other block sizes, with remaps.
    for (const [bs, mainBytes, spareBytes] of [
      [512, 4 * MiB, 512 * 1024],
      [65536, 32 * MiB, 16 * MiB],
    ] as const) {
      const m = lab.image(`m${bs}.img`, mainBytes);
      const s = lab.image(`s${bs}.img`, spareBytes);
      lab.ok(['init', `b${bs}`, '--main', m, '--spare', s, '--block-size', String(bs)]);
      lab.ok(['remap', `b${bs}`, '1', '300', String(mainBytes / 512 - 300)]);
      compare(`block size ${bs}`, `b${bs}`, m, s);
    }
  });
});
