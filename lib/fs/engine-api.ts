/**
 * The native engine as the adapter uses it: lib/native/engine.ts's module
 * (the contract in docs/architecture.md), and the one place that loads it.
 */
import { engineModule, engineUnavailable, type EngineModule, type EngineRequest } from '../native/engine.js';

export type EngineApi = EngineModule;
export type Upcall = EngineRequest;
export type { EngineHandle } from '../native/engine.js';

/** The engine, or why it cannot be used here (one line). */
export function loadEngine(): EngineApi | string {
  return engineModule() ?? engineUnavailable() ?? 'unknown reason';
}
