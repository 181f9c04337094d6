/**
 * Runs a started service in the foreground, as systemd expects: prints the
 * ready line, stops on SIGINT/SIGTERM (a second signal forces the unmount
 * even with open handles), and exits 0 once it is down. A stop that is
 * refused (a file system still mounted on a pair's loop device) is tried
 * again every RETRY_STOP_MS, so the daemon goes as soon as it may, not only
 * when signalled again or killed at the end of systemd's stop timeout. Under systemd
 * (NOTIFY_SOCKET set, Type=notify with NotifyAccess=all) it also sends
 * READY=1 with systemd-notify once the service is up.
 */
import { spawn } from 'child_process';
import { reportError } from './report.js';

export interface ForegroundService {
  readonly mountpoint: string;
  readonly done: Promise<void>;
  stop(force: boolean): Promise<void>;
}

const RETRY_STOP_MS = 2000;

export async function runInForeground(service: ForegroundService, readyLine: string, onDone: () => void = () => undefined): Promise<void> {
  let signals = 0;
  let retry: NodeJS.Timeout | undefined;
  const onSignal = (sig: string) => {
    signals++;
    clearTimeout(retry);
    const force = signals > 1;
    const attempt = (first: boolean): void => {
      service.stop(force).catch((err) => {
        if (first) {
          reportError(err);
          process.stderr.write(`remapfs: still serving after ${sig}; it stops once nothing uses it (tried every ${RETRY_STOP_MS / 1000} s), or at once on a second ${sig}\n`);
        }
        retry = setTimeout(() => attempt(false), RETRY_STOP_MS);
      });
    };
    attempt(true);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.stdout.write(readyLine + '\n');
  if (process.env.NOTIFY_SOCKET) notifySystemdReady();
  await service.done;
  onDone();
  process.stderr.write(`remapfs: unmounted ${service.mountpoint}\n`);
  // Let the control reply that asked for the shutdown reach its caller, then leave.
  setTimeout(() => process.exit(0), 200);
}

function notifySystemdReady(): void {
  const child = spawn('systemd-notify', ['--ready', `--pid=${process.pid}`], { stdio: 'ignore' });
  child.on('error', (err) => process.stderr.write(`remapfs: cannot tell systemd that the service is ready: ${err.message}\n`));
  child.on('exit', (code) => {
    if (code !== 0) process.stderr.write(`remapfs: systemd-notify --ready exited ${code}\n`);
  });
}
