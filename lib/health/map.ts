/**
 * The device map (pure): blocks grouped into cells, each cell coloured by the
 * worst state of its blocks, drawn as SVG (like ddrescueview) or as a
 * one-line text bar for `status`. Only mapInputOf reads the store.
 */
import type { PairRecord, Store } from '../store/db.js';
import { loadScanState, slowBlocks } from './history.js';

export type CellState = 'pending' | 'slow' | 'remapped' | 'unscanned' | 'ok';

/** Worst first. */
export const STATE_ORDER: readonly CellState[] = ['pending', 'slow', 'remapped', 'unscanned', 'ok'];

export const STATE_COLOURS: Record<CellState, string> = {
  pending: '#d62728',
  slow: '#ff9f1c',
  remapped: '#1f77b4',
  unscanned: '#c7c7c7',
  ok: '#2ca02c',
};

/** A generous average width of a character of the 12 px sans-serif legend. */
export const LEGEND_CHAR_PX = 7.2;

export const STATE_CHARS: Record<CellState, string> = { pending: 'P', slow: 's', remapped: 'R', unscanned: ' ', ok: '.' };

export interface MapInput {
  virtualBlocks: number;
  remapped: ReadonlySet<number>;
  pending: ReadonlySet<number>;
  slow: ReadonlySet<number>;
  /** Blocks at or below this were read by a scan (or the whole device after a full pass). */
  scannedThrough: number;
}

export interface Cell {
  firstBlock: number;
  /** Exclusive. */
  endBlock: number;
  state: CellState;
}

export function blockState(block: number, m: MapInput): CellState {
  if (m.pending.has(block)) return 'pending';
  if (m.remapped.has(block)) return 'remapped';
  if (m.slow.has(block)) return 'slow';
  if (block > m.scannedThrough) return 'unscanned';
  return 'ok';
}

/** Splits the device into at most `maxCells` cells of equal block count. */
export function cells(m: MapInput, maxCells: number): Cell[] {
  const per = Math.max(1, Math.ceil(m.virtualBlocks / maxCells));
  const out: Cell[] = [];
  const marked = [...m.pending, ...m.remapped, ...m.slow];
  const worstByCell = new Map<number, CellState>();
  for (const b of marked) {
    if (b < 0 || b >= m.virtualBlocks) continue;
    const c = Math.floor(b / per);
    const s = blockState(b, m);
    const prev = worstByCell.get(c);
    if (!prev || STATE_ORDER.indexOf(s) < STATE_ORDER.indexOf(prev)) worstByCell.set(c, s);
  }
  for (let first = 0, c = 0; first < m.virtualBlocks; first += per, c++) {
    const end = Math.min(m.virtualBlocks, first + per);
    const base: CellState = end - 1 > m.scannedThrough ? 'unscanned' : 'ok';
    const marks = worstByCell.get(c);
    const state = marks && STATE_ORDER.indexOf(marks) < STATE_ORDER.indexOf(base) ? marks : base;
    out.push({ firstBlock: first, endBlock: end, state });
  }
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderSvg(title: string, m: MapInput, opts: { columns?: number; maxCells?: number; cellPx?: number } = {}): string {
  const list = cells(m, opts.maxCells ?? 4096);
  const cols = Math.min(opts.columns ?? 64, list.length);
  const px = opts.cellPx ?? 10;
  const rows = Math.ceil(list.length / cols);
  const top = 30;
  const legendTop = top + rows * px + 16;
  const counts: Record<CellState, number> = { pending: 0, slow: 0, remapped: 0, unscanned: 0, ok: 0 };
  counts.ok = Math.max(0, Math.min(m.virtualBlocks, m.scannedThrough + 1));
  counts.unscanned = Math.max(0, m.virtualBlocks - 1 - m.scannedThrough);
  for (const b of new Set([...m.pending, ...m.remapped, ...m.slow])) {
    const s = blockState(b, m);
    counts[s]++;
    counts[b > m.scannedThrough ? 'unscanned' : 'ok']--;
  }
  // Each legend entry is as wide as its label, so long counts never run into the next swatch.
  const legend: Array<{ state: CellState; x: number; label: string }> = [];
  let legendEnd = 10;
  for (const s of STATE_ORDER) {
    const label = `${s} (${counts[s]})`;
    legend.push({ state: s, x: legendEnd, label });
    legendEnd += 16 + Math.ceil(label.length * LEGEND_CHAR_PX) + 14;
  }
  const width = Math.max(cols * px + 20, 560, legendEnd);
  const height = legendTop + 24;
  const parts: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-family="sans-serif" font-size="13">${esc(title)}: ${m.virtualBlocks} blocks, ${list[0] ? list[0].endBlock - list[0].firstBlock : 0} per cell</text>`,
    `<g id="cells">`,
  ];
  list.forEach((c, i) => {
    const x = 10 + (i % cols) * px;
    const y = top + Math.floor(i / cols) * px;
    parts.push(`<rect x="${x}" y="${y}" width="${px - 1}" height="${px - 1}" fill="${STATE_COLOURS[c.state]}" data-state="${c.state}" data-first-block="${c.firstBlock}" data-end-block="${c.endBlock}"/>`);
  });
  parts.push(`</g>`, `<g id="legend" font-family="sans-serif" font-size="12">`);
  for (const { state: s, x, label } of legend) {
    parts.push(`<rect x="${x}" y="${legendTop}" width="12" height="12" fill="${STATE_COLOURS[s]}" data-legend="${s}"/>`);
    parts.push(`<text x="${x + 16}" y="${legendTop + 11}">${label}</text>`);
  }
  parts.push(`</g>`, `</svg>`);
  return parts.join('\n') + '\n';
}

/**
 * The map of a pair from the store (remaps, pending and slow blocks, scan coverage). The main label's block,
 * moved to the spare at init, is not a remap of the disk's health and is left out, as in `status`.
 */
export function mapInputOf(store: Store, pair: PairRecord): MapInput {
  const remapped = new Set<number>();
  const pending = new Set<number>();
  for (const r of store.remaps.list(pair.id)) if (r.reason !== 'label') (r.state === 'pending' ? pending : remapped).add(r.mainBlock);
  const virtualBlocks = Math.floor(pair.mainBytes / pair.blockSize);
  const scan = loadScanState(store, pair.id, virtualBlocks, (why) => store.warn(`pair ${pair.name}: ignoring the stored scan progress: ${why}`));
  return {
    virtualBlocks,
    remapped,
    pending,
    slow: new Set(slowBlocks(store, pair.id).map((s) => s.block)),
    scannedThrough: scan.passesCompleted > 0 ? virtualBlocks - 1 : scan.maxBlockScanned,
  };
}

/** A one-line bar of `width` characters: P pending, s slow, R remapped, blank unscanned, . ok. */
export function renderBar(m: MapInput, width = 64): string {
  return cells(m, width)
    .map((c) => STATE_CHARS[c.state])
    .join('');
}
