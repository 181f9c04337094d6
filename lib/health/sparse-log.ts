/** Rate-limited log lines for the scanner (pure: the caller passes the time). */
/** One kind of line, logged at most once per `everyMs`; the next one counts those left out. */
export class SparseLog {
  private loggedAt = -Infinity;
  private skipped = 0;

  constructor(private readonly everyMs: number) {}

  log(now: number, log: (line: string) => void, line: string, what: string): void {
    if (now - this.loggedAt < this.everyMs) {
      this.skipped++;
      return;
    }
    log(this.skipped ? `${line}; ${this.skipped} more ${what} since the last such line` : line);
    this.loggedAt = now;
    this.skipped = 0;
  }
}
