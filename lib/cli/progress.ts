/**
 * Progress display for long commands: a bar redrawn in place on a terminal,
 * plain lines (every 10%) otherwise, with rate and ETA. Writes to stderr, so
 * stdout stays clean for --json.
 */
import { formatBytes } from './common.js';

export class Progress {
  private readonly tty: boolean;
  private readonly started = Date.now();
  private lastTenth = -1;
  private lastDraw = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unitBytes: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!out.isTTY;
  }

  update(done: number): void {
    const frac = this.total ? Math.min(1, done / this.total) : 1;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? (done * this.unitBytes) / elapsed : 0;
    const eta = rate > 0 ? ((this.total - done) * this.unitBytes) / rate : 0;
    const tail = `${(frac * 100).toFixed(1)}%  ${formatBytes(rate)}/s  ETA ${formatDuration(eta)}`;
    if (this.tty) {
      if (Date.now() - this.lastDraw < 100 && frac < 1) return;
      this.lastDraw = Date.now();
      const width = 30;
      const filled = Math.round(frac * width);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${tail}   `);
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth === this.lastTenth) return;
      this.lastTenth = tenth;
      this.out.write(`${this.label}: ${tail}\n`);
    }
  }

  finish(): void {
    if (this.tty) this.out.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
