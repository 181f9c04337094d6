/**
 * GNU ddrescue mapfiles (pure): parsing, writing, and an area map that a copy
 * updates as it goes. Format (ddrescue manual, "Mapfile structure"): comment
 * lines start with '#'; the first data line is "current_pos current_status
 * current_pass"; then one line per area, "pos size status", with pos and size
 * in bytes (0x-prefixed hex is written; decimal and hex are read). Statuses:
 *   ?  non-tried   *  failed, non-trimmed   /  failed, non-scraped
 *   -  bad sector(s)   +  finished
 * Areas are sorted, contiguous, and cover the whole device.
 */
import { excerpt } from '../errors.js';

export type AreaStatus = '?' | '*' | '/' | '-' | '+';
export const AREA_STATUSES: readonly AreaStatus[] = ['?', '*', '/', '-', '+'];

export interface Area {
  pos: number;
  size: number;
  status: AreaStatus;
}

export interface Mapfile {
  currentPos: number;
  /** '?' copying, '*' trimming, '/' scraping, '-' retrying, 'F' filling, 'G' generating, '+' finished. */
  currentStatus: string;
  currentPass: number;
  areas: Area[];
}

/** A line or field of a file as it may appear in a message: printable, at most 40 characters. */
const quote = (s: string): string => `"${excerpt(s)}"`;

function num(s: string, what: string, at: string): number {
  const n = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s.slice(2), 16) : /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`${at}: bad ${what} ${quote(s)}${/^(0x[0-9a-f]+|\d+)$/i.test(s) ? ' (2^53 or more)' : ''}`);
  return n;
}

/**
 * Parses a mapfile. A file that is not one is refused with an Error whose message is one printable line naming
 * the line number and quoting at most 40 characters of it (a binary file given by mistake prints no raw bytes).
 * Areas must be contiguous from 0, and their end below 2^53.
 */
export function parseMapfile(text: string): Mapfile {
  const lines = text
    .split('\n')
    .map((l, i) => ({ n: i + 1, l: l.trim() }))
    .filter(({ l }) => l && !l.startsWith('#'));
  const first = lines[0];
  if (!first) throw new Error('empty mapfile');
  const head = first.l;
  const at = (n: number): string => `line ${n}`;
  const [pos, status, pass] = head.split(/\s+/);
  if (pos === undefined || status === undefined) throw new Error(`${at(first.n)}: bad status line ${quote(head)}`);
  const m: Mapfile = { currentPos: num(pos, 'current position', at(first.n)), currentStatus: status, currentPass: pass === undefined ? 1 : num(pass, 'pass', at(first.n)), areas: [] };
  if (!/^[?*/\-FG+]$/.test(status)) throw new Error(`${at(first.n)}: bad current status ${quote(status)}`);
  let expect = 0;
  for (const { n, l: line } of lines.slice(1)) {
    const [p, s, st] = line.split(/\s+/);
    if (p === undefined || s === undefined || st === undefined || !AREA_STATUSES.includes(st as AreaStatus)) throw new Error(`${at(n)}: bad area line ${quote(line)}`);
    const area = { pos: num(p, 'position', at(n)), size: num(s, 'size', at(n)), status: st as AreaStatus };
    if (area.pos !== expect) throw new Error(`${at(n)}: areas are not contiguous at ${excerpt(line)}`);
    expect = area.pos + area.size;
    if (!Number.isSafeInteger(expect)) throw new Error(`${at(n)}: the area ends at 2^53 or more`);
    m.areas.push(area);
  }
  return m;
}

const hex = (n: number) => '0x' + n.toString(16).toUpperCase().padStart(8, '0');

export function formatMapfile(m: Mapfile, comment: string): string {
  const out = [`# Mapfile. Created by ${comment}`, '# current_pos  current_status  current_pass', `${hex(m.currentPos)}     ${m.currentStatus}               ${m.currentPass}`, '#      pos        size  status'];
  for (const a of m.areas) out.push(`${hex(a.pos)}  ${hex(a.size)}  ${a.status}`);
  return out.join('\n') + '\n';
}

/** An area map over [0, size) that merges neighbours of equal status. */
export class AreaMap {
  areas: Area[];

  constructor(readonly size: number, areas?: Area[]) {
    this.areas = areas && areas.length ? areas.map((a) => ({ ...a })) : [{ pos: 0, size, status: '?' }];
    const end = this.areas.reduce((e, a) => Math.max(e, a.pos + a.size), 0);
    if (end !== size) throw new Error(`the mapfile covers ${end} bytes, the device has ${size}`);
  }

  /** Sets [pos, pos+len) to `status`. */
  set(pos: number, len: number, status: AreaStatus): void {
    if (len <= 0) return;
    const end = pos + len;
    const out: Area[] = [];
    for (const a of this.areas) {
      const aEnd = a.pos + a.size;
      if (aEnd <= pos || a.pos >= end) {
        out.push(a);
        continue;
      }
      if (a.pos < pos) out.push({ pos: a.pos, size: pos - a.pos, status: a.status });
      if (aEnd > end) out.push({ pos: end, size: aEnd - end, status: a.status });
    }
    out.push({ pos, size: len, status });
    out.sort((x, y) => x.pos - y.pos);
    const merged: Area[] = [];
    for (const a of out) {
      const last = merged[merged.length - 1];
      if (last && last.status === a.status && last.pos + last.size === a.pos) last.size += a.size;
      else merged.push({ ...a });
    }
    this.areas = merged;
  }

  /** Areas with one of `statuses`, in order. */
  withStatus(...statuses: AreaStatus[]): Area[] {
    return this.areas.filter((a) => statuses.includes(a.status)).map((a) => ({ ...a }));
  }

  bytes(...statuses: AreaStatus[]): number {
    return this.withStatus(...statuses).reduce((n, a) => n + a.size, 0);
  }
}

/** Sorted 512-byte sectors -> areas of `status` (others '+'), covering [0, size). */
export function areasFromSectors(sectors: Iterable<number>, size: number, status: AreaStatus = '-', sectorBytes = 512): Area[] {
  const map = new AreaMap(size, [{ pos: 0, size, status: '+' }]);
  const sorted = [...new Set(sectors)].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    const first = sorted[i] as number;
    map.set(first * sectorBytes, (j - i + 1) * sectorBytes, status);
    i = j + 1;
  }
  return map.areas;
}

/** The 512-byte sectors inside areas of the given statuses (partial sectors count). */
export function sectorsOf(areas: readonly Area[], statuses: readonly AreaStatus[], sectorBytes = 512): number[] {
  const out: number[] = [];
  for (const a of areas) {
    if (!statuses.includes(a.status) || a.size === 0) continue;
    for (let s = Math.floor(a.pos / sectorBytes); s * sectorBytes < a.pos + a.size; s++) out.push(s);
  }
  return out;
}

/**
 * e2fsprogs badblocks output: one block number per line, in units of `blockSize` bytes -> 512-byte sectors.
 * With `deviceSectors`, a block that reaches past that many sectors is refused, naming its line, before any sector
 * of it is listed (so the list is bounded by the device). A line that is not a block number, or a number whose
 * sectors reach 2^53, is refused with its line number and at most 40 characters of it.
 */
export function parseBadblocks(text: string, blockSize: number, deviceSectors = Number.MAX_SAFE_INTEGER): number[] {
  if (blockSize % 512 !== 0 || blockSize <= 0) throw new Error(`block size must be a multiple of 512, got ${blockSize}`);
  const per = blockSize / 512;
  const out: number[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] as string).trim();
    if (!line || line.startsWith('#')) continue;
    if (!/^\d+$/.test(line)) throw new Error(`line ${n + 1}: "${excerpt(line)}" is not a block number`);
    const b = Number(line);
    const last = b * per + per - 1;
    if (!Number.isSafeInteger(last)) throw new Error(`line ${n + 1}: block number ${excerpt(line)} is out of range (2^53 or more sectors)`);
    if (last >= deviceSectors) {
      throw new Error(`line ${n + 1}: block ${b} (of ${blockSize} bytes) lies outside the device (${Math.floor(deviceSectors / per)} such blocks)`);
    }
    for (let i = 0; i < per; i++) out.push(b * per + i);
  }
  return out;
}
