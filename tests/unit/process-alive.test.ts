/** processAlive with a start bound: a pid that now names a process started later is another process (pid reuse). */
import { processAlive } from '../../lib/store/mounts.js';

describe('processAlive', () => {
  it('this process is alive for a row it wrote after it started, and not for a row from before it started', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(process.pid, Date.now())).toBe(true);
    // A mounts row from a day before this process started: its pid was another daemon's, now gone.
    const startedMs = Date.now() - process.uptime() * 1000;
    expect(processAlive(process.pid, startedMs - 24 * 3600 * 1000)).toBe(false);
  });

  it('a pid that does not exist is gone', () => {
    expect(processAlive(2 ** 22 + 12345)).toBe(false);
  });
});
