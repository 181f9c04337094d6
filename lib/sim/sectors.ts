/** Parsing and printing lists of 512-byte sectors such as "7,100-163,2048" (pure). */

export const MAX_LISTED_SECTORS = 4_000_000;

/** Parses comma- or space-separated sectors and inclusive ranges; throws Error with a message for users. */
export function parseSectorList(items: readonly string[], limitSectors?: number): number[] {
  const out: number[] = [];
  for (const item of items.flatMap((s) => s.split(/[\s,]+/)).filter((s) => s.length > 0)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw new Error(`"${item}" is not a sector or a range of sectors (like 100 or 100-163)`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) throw new Error(`"${item}" is too large`);
    if (last < first) throw new Error(`range "${item}" ends before it starts`);
    if (limitSectors !== undefined && last >= limitSectors) throw new Error(`sector ${last} is beyond the end of the device (${limitSectors} sectors)`);
    if (out.length + (last - first + 1) > MAX_LISTED_SECTORS) throw new Error(`more than ${MAX_LISTED_SECTORS} sectors listed`);
    for (let s = first; s <= last; s++) out.push(s);
  }
  return out;
}

/** Compresses sorted sectors into "a-b" ranges. */
export function formatSectorList(sectors: Iterable<number>): string {
  const sorted = [...new Set(sectors)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
