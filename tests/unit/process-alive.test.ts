/** processAlive with a start bound: a pid that now names a process started later is another process (pid reuse). */
import { spawn } from 'child_process';
import { isDaemonCommand, remapfsProcess, servesMountpoint } from '../../lib/fsutil/proc.js';
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

  it("a row's own daemon that looks younger than the row (the clock set forward since) is still alive; another process with that pid, even another remapfs daemon, is not", async () => {
    // argv as a daemon has it: node <code> remapfs --db X mount <dir>, the dir relative to its working directory
    const code = 'setInterval(() => {}, 1000)';
    const child = spawn(process.execPath, ['-e', code, '/usr/local/bin/remapfs', '--db', '/x.db', 'mount', 'mnt', '--attach'], { stdio: 'ignore', cwd: '/tmp' });
    const other = spawn(process.execPath, ['-e', code, '/usr/local/bin/remapfs', 'status', 'p'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const pid = child.pid as number;
      expect(remapfsProcess(pid)).toMatchObject({ command: 'mount' });
      expect(isDaemonCommand('mount') && isDaemonCommand('simulate') && !isDaemonCommand('status')).toBe(true);
      expect(servesMountpoint(pid, '/tmp/mnt')).toBe(true);
      expect(servesMountpoint(pid, '/srv/other')).toBe(false);
      expect(servesMountpoint(other.pid as number, '/tmp/mnt')).toBe(false);
      // A row written an hour before the process seems to have started.
      const hourBefore = Date.now() - 3600 * 1000;
      expect(processAlive(pid, hourBefore, '/tmp/mnt')).toBe(true);
      // A stale row of another mountpoint whose pid came round to this daemon: gone.
      expect(processAlive(pid, hourBefore, '/srv/other')).toBe(false);
      expect(processAlive(other.pid as number, hourBefore, '/tmp/mnt')).toBe(false);
    } finally {
      child.kill();
      other.kill();
    }
  });
});
