/** Shared by the PR_SET_IO_FLUSHER tests (tests/e2e and tests/privileged). */
import * as path from 'path';
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags.js';

const MiB = 1024 * 1024;

export interface IoFlusherJson {
  set: boolean;
  inherited: boolean;
  threadsBefore: number;
  reason?: string;
  threads: number;
  threadsFlagged: number;
}

/** Threads without both flags, as "tid name flags"; the list is what a failure shows. */
export function unflagged(h: DaemonHandle): string[] {
  const threads = threadFlagsOf(h.child.pid!);
  expect(threads.length).toBeGreaterThan(1);
  return threads.filter((t) => !hasIoFlusherFlags(t.flags)).map((t) => `${t.tid} ${t.comm} flags=0x${t.flags.toString(16)}`);
}

/** A pair disk0 served at <lab>/mnt, with ext4 made on it so the pools have started their threads. */
export async function servePair(lab: Lab, env?: NodeJS.ProcessEnv): Promise<DaemonHandle> {
  lab.ok(['init', 'disk0', '--main', lab.image('main.img', 64 * MiB), '--spare', lab.image('spare.img', 16 * MiB)]);
  const mnt = lab.mkdir('mnt');
  const daemon = await lab.startDaemon(mnt, [], env);
  lab.mkfsExt4(lab.attachLoop(path.join(mnt, 'disk0')));
  return daemon;
}

export function ioFlusherStatus(lab: Lab): IoFlusherJson {
  const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as { ioFlusher?: IoFlusherJson };
  if (!st.ioFlusher) throw new Error('status --json has no ioFlusher');
  return st.ioFlusher;
}
