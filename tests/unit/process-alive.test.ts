/** processAlive with a start bound: a pid that now names a process started later is another process (pid reuse). */
import { spawn } from 'child_process';
import { isRemapfsDaemon, remapfsProcess } from '../../lib/fsutil/proc.js';
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

  it('a remapfs daemon that looks younger than its row (the clock set forward since) is still alive; the command is read after the global options', async () => {
    // argv as the daemon has it: node <code> remapfs --db X mount <dir>
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '/usr/local/bin/remapfs', '--db', '/x.db', 'mount', '/srv/remapfs'], { stdio: 'ignore' });
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '/usr/local/bin/remapfs', 'status', 'p'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const pid = child.pid as number;
      expect(remapfsProcess(pid)).toMatchObject({ command: 'mount' });
      expect(isRemapfsDaemon(pid)).toBe(true);
      expect(isRemapfsDaemon(other.pid as number)).toBe(false);
      expect(isRemapfsDaemon(process.pid)).toBe(false);
      // A row written an hour before the process seems to have started: a daemon still, another command not.
      const hourBefore = Date.now() - 3600 * 1000;
      expect(processAlive(pid, hourBefore)).toBe(true);
      expect(processAlive(other.pid as number, hourBefore)).toBe(false);
    } finally {
      child.kill();
      other.kill();
    }
  });
});
