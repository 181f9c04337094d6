/** Verify and repair of a pair's metadata, as reported to users (CLI and daemon share it). */
import { FileDevice } from '../block/file-device.js';
import { spareLayout } from '../format/layout.js';
import type { PairRecord, Store } from '../store/db.js';
import { reconcile, type Reconciliation, type ReconcileOptions } from './reconcile.js';
import { SlotSet } from './slots.js';

export interface VerifyReport {
  version: 1;
  pair: string;
  uuid: string;
  consistent: boolean;
  sequence: number;
  source: Reconciliation['source'];
  /** The slot whose copy was adopted, when the slots are the source. */
  sourceSlot: number | null;
  database: { sequence: number; agrees: boolean };
  slots: Array<{ index: number; byteOffset: number; byteLength: number; valid: boolean; sequence: number | null; current: boolean; reason: string | null }>;
  repaired: string[];
}

export function toVerifyReport(pair: PairRecord, r: Reconciliation): VerifyReport {
  return {
    version: 1,
    pair: pair.name,
    uuid: pair.uuid,
    consistent: r.consistent,
    sequence: r.sequence,
    source: r.source,
    sourceSlot: r.sourceSlot ?? null,
    database: { sequence: r.databaseSequence, agrees: r.databaseAgrees },
    slots: r.slots.map((s) => ({
      index: s.index,
      byteOffset: s.byteOffset,
      byteLength: s.byteLength,
      valid: s.valid,
      sequence: s.sequence ?? null,
      current: !r.staleSlots.includes(s.index),
      reason: s.valid ? (r.staleSlots.includes(s.index) ? staleReason(s.sequence, r.sequence) : null) : (s.reason ?? 'invalid'),
    })),
    repaired: r.repaired,
  };
}

/** Verify (write=false) or repair (write=true) a pair that no daemon is serving. */
export function checkOffline(store: Store, pair: PairRecord, opts: Omit<ReconcileOptions, 'inForce'>): VerifyReport {
  const spare = FileDevice.open(pair.sparePath, opts.write ? {} : { readOnly: true, mode: 'buffered' });
  try {
    const slots = new SlotSet(spare, spareLayout(pair.spareBytes, pair.blockSize));
    return toVerifyReport(pair, reconcile(store, pair, slots, opts));
  } finally {
    spare.close();
  }
}

function staleReason(copy: number | undefined, current: number): string {
  return copy === current ? `a different table under the current sequence ${current}` : `stale: sequence ${copy}, current is ${current}`;
}

export function formatVerifyReport(v: VerifyReport): string {
  const lines = [`pair ${v.pair} (uuid ${v.uuid}): ${v.consistent ? 'consistent' : 'INCONSISTENT'}, sequence ${v.sequence}`];
  lines.push(`database: sequence ${v.database.sequence}, ${v.database.agrees ? 'agrees' : 'DISAGREES'}`);
  for (const s of v.slots) {
    const state = s.valid ? (s.current ? 'valid' : 'STALE') : 'INVALID';
    lines.push(`slot ${s.index}: offset ${s.byteOffset}, ${s.byteLength} bytes, ${state}, sequence ${s.sequence ?? '-'}${s.reason ? `: ${s.reason}` : ''}`);
  }
  for (const r of v.repaired) lines.push(`repaired: ${r}`);
  return lines.join('\n') + '\n';
}
