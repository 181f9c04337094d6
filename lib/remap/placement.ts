/**
 * Placement: puts one main block's data on a spare block, steps 2-4 of the
 * crash order in recovery.ts: allocate a free pool block, write the data
 * there and flush the spare, commit the entry to the journal (durable when it
 * returns), and only then switch the in-memory index. A spare block that
 * fails the write or the flush is retired (persisted) and the next one is
 * tried; when none is left, placement fails with ENOSPC (the pool is
 * exhausted). Only disk errors of the spare retire a block; any other error
 * propagates and changes nothing.
 */
import type { BlockDevice } from '../block/device.js';
import { isDiskError } from '../block/disk-error.js';
import { RemapfsError } from '../errors.js';
import type { RemapReason } from '../format/slot-codec.js';
import type { RemapIndex } from './index-table.js';
import type { IoCounters, RemapJournal } from './types.js';

export class Placement {
  constructor(
    private readonly name: string,
    private readonly spare: BlockDevice,
    private readonly blockSize: number,
    private readonly index: RemapIndex,
    private readonly journal: RemapJournal,
    private readonly counters: IoCounters,
    readonly now: () => number,
    private readonly onEvent: (line: string) => void,
  ) {}

  /** Places `data` (one block) for `mainBlock`; returns the spare block. Throws ENOSPC when the pool is exhausted. */
  place(mainBlock: number, data: Buffer, reason: RemapReason, lostSectors: number): number {
    for (;;) {
      const spareBlock = this.index.allocate();
      if (spareBlock < 0) {
        const cause = Object.assign(new Error('spare pool exhausted'), { code: 'ENOSPC' });
        throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, cause, 'no spare block left: evacuate the data to a new disk');
      }
      try {
        this.spare.write(data, spareBlock * this.blockSize);
        this.spare.flush();
      } catch (err) {
        if (!isDiskError(err)) throw err;
        this.counters.spareErrors++;
        this.retire(spareBlock, `spare block ${spareBlock} failed a write and is retired`);
        continue;
      }
      this.journal.commitRemap({ mainBlock, spareBlock, reason, state: 'remapped', lostSectors, createdAt: this.now() });
      this.index.set(mainBlock, spareBlock);
      this.counters.remapEvents++;
      this.onEvent(`block ${mainBlock} remapped to spare block ${spareBlock}, reason ${reason}${lostSectors ? `, ${lostSectors} unreadable sector(s) zero-filled` : ''}`);
      return spareBlock;
    }
  }

  /** Persists, then applies, that a spare block is never used again. */
  retire(spareBlock: number, event: string): void {
    this.journal.commitRetired(spareBlock);
    this.index.retire(spareBlock);
    this.onEvent(event);
  }
}
