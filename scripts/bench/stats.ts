/** Pure helpers of the bench: a seeded order, medians, spreads, and ratios paired by round. */

/** A small deterministic generator (mulberry32), so every bench run uses the same orders. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** (max - min) / median, in percent; '-' without values. */
export function spread(xs: readonly number[]): string {
  return xs.length ? `${((100 * (Math.max(...xs) - Math.min(...xs))) / median(xs)).toFixed(0)}%` : '-';
}

/** A ratio already divided, to 3 digits; '-' when it is not a number. */
export function rel(r: number): string {
  return Number.isFinite(r) ? r.toFixed(3) : '-';
}

export function fixed(x: number, digits = 0): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

/** Per stack, per cell: every run's number. */
export class Samples {
  private readonly table = new Map<string, Map<string, number[]>>();

  add(stack: string, cell: string, value: number): void {
    let byCell = this.table.get(stack);
    if (!byCell) this.table.set(stack, (byCell = new Map<string, number[]>()));
    const xs = byCell.get(cell);
    if (xs) xs.push(value);
    else byCell.set(cell, [value]);
  }

  all(stack: string, cell: string): number[] {
    return this.table.get(stack)?.get(cell) ?? [];
  }

  median(stack: string, cell: string): number {
    return median(this.all(stack, cell));
  }

  has(stack: string): boolean {
    return this.table.has(stack);
  }

  /**
   * x/y for a cell: the median of the per-round ratios x_k / y_k when both stacks have one run per round
   * (interleaved: run k of each ran in the same round, within a minute of each other, so a slow minute of the
   * host slows both); otherwise the ratio of the medians.
   */
  ratio(x: string, y: string, cell: string): number {
    return median(this.rounds(x, y, cell) ?? [this.median(x, cell) / this.median(y, cell)]);
  }

  /** (x_k a_k) / (y_k b_k) per round, when all four ran once per round: a ratio divided by its control. */
  ratioOver(x: string, y: string, a: string, b: string, cell: string): number {
    const xy = this.rounds(x, y, cell);
    const ab = this.rounds(a, b, cell);
    if (!xy || !ab || xy.length !== ab.length) return this.ratio(x, y, cell) / this.ratio(a, b, cell);
    return median(xy.map((r, k) => r / (ab[k] as number)));
  }

  /** '0.64-0.85': the smallest and largest per-round ratio, or '-' when the runs are not paired. */
  ratioRange(x: string, y: string, cell: string): string {
    const rs = this.rounds(x, y, cell);
    return rs ? `${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)}` : '-';
  }

  private rounds(x: string, y: string, cell: string): number[] | undefined {
    const xs = this.all(x, cell);
    const ys = this.all(y, cell);
    if (!xs.length || xs.length !== ys.length) return undefined;
    return xs.map((v, k) => v / (ys[k] as number));
  }

  /** stack -> cell -> every run's number, in the order they ran (the k-th of each compared stack: round k). */
  toJSON(): Record<string, Record<string, number[]>> {
    return Object.fromEntries([...this.table].map(([stack, byCell]) => [stack, Object.fromEntries(byCell)]));
  }
}
