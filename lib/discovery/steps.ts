/**
 * Work cut into steps: a generator that does one bounded piece of work (one
 * small SQLite transaction, say) per step and yields the name of its phase
 * after it. One implementation, two drivers:
 *  - runNow runs the steps back to back (a CLI command: nothing else waits);
 *  - runStepped lets the event loop turn between steps (the daemon's serving
 *    thread: while a step runs, fuse-native's requests, the native engine's
 *    slow path and every other pair's metadata commits wait). It times every
 *    step and counts, per phase, the requests served between the end of the
 *    phase's first step and the end of its last.
 * Stopping (runStepped's `stopped`) closes the generator, so its finally
 * blocks run (locks are released); what it wrote stays as it was.
 */
import { performance } from 'perf_hooks';
import { RemapfsError } from '../errors.js';

/** Steps that yield their phase's name after each step and return T. */
export type Steps<T> = Generator<string, T, void>;

export function runNow<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export interface PhaseStats {
  steps: number;
  busyMs: number;
  longestMs: number;
  /** Requests served between the end of the phase's first step and the end of its last (0 for one step). */
  servedBetween: number;
}

export interface StepStats {
  steps: number;
  /** Time spent in steps (the serving thread was busy), and the longest single step. */
  busyMs: number;
  longestMs: number;
  /** The phase of the longest step ('end' for the last step, which returns). */
  longestPhase: string;
  /** Every step's time, in order (a diagnosis: what a slow step was). */
  stepMs: number[];
  elapsedMs: number;
  phases: Map<string, PhaseStats>;
}

export interface SteppedOptions {
  /** Requests served so far (sampled after each step). */
  served?: () => number;
  /** Checked before each step: true closes the steps and fails with an error saying what stopped (`op`, `object`). */
  stopped?: () => boolean;
  op?: string;
  object?: string;
}

export async function runStepped<T>(steps: Steps<T>, opts: SteppedOptions = {}): Promise<{ value: T; stats: StepStats }> {
  const stats: StepStats = { steps: 0, busyMs: 0, longestMs: 0, longestPhase: '', stepMs: [], elapsedMs: 0, phases: new Map() };
  const firstServed = new Map<string, number>();
  const start = performance.now();
  for (;;) {
    if (opts.stopped?.()) {
      steps.return(undefined as T);
      throw new RemapfsError(opts.op ?? 'run', opts.object ?? 'steps', 'stopped before it was done');
    }
    const t = performance.now();
    const r = steps.next();
    const ms = performance.now() - t;
    stats.steps++;
    stats.busyMs += ms;
    stats.stepMs.push(ms);
    if (ms >= stats.longestMs) {
      stats.longestMs = ms;
      stats.longestPhase = r.done ? 'end' : r.value;
    }
    if (r.done) {
      stats.elapsedMs = performance.now() - start;
      return { value: r.value, stats };
    }
    const served = opts.served?.() ?? 0;
    const ph = stats.phases.get(r.value) ?? { steps: 0, busyMs: 0, longestMs: 0, servedBetween: 0 };
    if (!firstServed.has(r.value)) firstServed.set(r.value, served);
    ph.steps++;
    ph.busyMs += ms;
    ph.longestMs = Math.max(ph.longestMs, ms);
    ph.servedBetween = served - (firstServed.get(r.value) ?? served);
    stats.phases.set(r.value, ph);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** "3 step(s), the longest 12 ms, 30 ms in all" for a phase, or for all of them. */
export function describeSteps(s: { steps: number; busyMs: number; longestMs: number }): string {
  return `${s.steps} step(s), the longest ${s.longestMs.toFixed(0)} ms, ${s.busyMs.toFixed(0)} ms in all`;
}

/** "prepare 1 step(s) ... 68 ms in all; rows 124 step(s) ...; the longest step: rows": where the time went. */
export function describePhases(s: StepStats): string {
  return `${[...s.phases].map(([name, p]) => `${name} ${describeSteps(p)}`).join('; ')}; the longest step: ${s.longestPhase}`;
}
