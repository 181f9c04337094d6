/**
 * Holding the stop signals over work that must not stop half way: a new
 * pair's database row, slots and label (init). SIGINT, SIGTERM and SIGHUP
 * that arrive meanwhile are caught (libuv queues them while the synchronous
 * work runs) and acted on after it: the command says what it finished and
 * exits with 128 + the signal's number, as the shell's default would. SIGKILL
 * and a power cut still stop it anywhere; init's refusal of a spare with
 * another pair's metadata (and its --force) covers those.
 */
import * as os from 'os';

const HELD = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs `fn` with the stop signals held; `done` says what was finished when one came. */
export async function withStopSignalsHeld<T>(fn: () => T, done: (result: T) => string): Promise<T> {
  let caught: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => void (caught ??= sig);
  for (const s of HELD) process.on(s, onSignal);
  let result: T;
  try {
    result = fn();
  } finally {
    // Signals caught during fn wait in libuv's pipe, read in the loop's poll phase: two check phases have one between.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    for (const s of HELD) process.off(s, onSignal);
  }
  if (caught) {
    process.stderr.write(`remapfs: ${done(result)}; then stopped by ${caught}\n`);
    process.exit(128 + (os.constants.signals[caught] ?? 0));
  }
  return result;
}
