/**
 * Checks on the fields of a request that arrived as JSON (off the control
 * socket, or built by the CLI): each returns the field with its type, or
 * throws one RemapfsError naming the operation and the field. Pure.
 */
import { RemapfsError } from '../errors.js';

const HINT = 'the CLI and the daemon must be the same remapfs version';

export function badRequest(op: string, problem: string): RemapfsError {
  return new RemapfsError('control', 'request', op ? `${op}: ${problem}` : problem, HINT);
}

/** A JSON object (not null, not an array). */
export function isObject(raw: unknown): raw is Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw);
}

export function stringField(op: string, raw: Record<string, unknown>, name: string): string {
  const v = raw[name];
  if (typeof v !== 'string' || v === '') throw badRequest(op, `"${name}" must be a non-empty string`);
  return v;
}

export function booleanField(op: string, raw: Record<string, unknown>, name: string, fallback?: boolean): boolean {
  const v = raw[name];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'boolean') throw badRequest(op, `"${name}" must be true or false`);
  return v;
}

/** Sector (or block) numbers: an array of non-negative safe integers. */
export function countsField(op: string, raw: Record<string, unknown>, name: string): number[] {
  const v = raw[name];
  if (!Array.isArray(v) || !v.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
    throw badRequest(op, `"${name}" must be an array of non-negative integers`);
  }
  return v as number[];
}

/** A non-negative safe integer; `fallback` when the field is absent. */
export function countField(op: string, raw: Record<string, unknown>, name: string, fallback?: number): number {
  const v = raw[name];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw badRequest(op, `"${name}" must be a non-negative integer`);
  return v;
}

export function oneOfField<T extends string>(op: string, raw: Record<string, unknown>, name: string, choices: readonly T[]): T {
  const v = raw[name];
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) throw badRequest(op, `"${name}" must be one of ${choices.join(', ')}`);
  return v as T;
}

export function objectField(op: string, raw: Record<string, unknown>, name: string): Record<string, unknown> {
  const v = raw[name];
  if (!isObject(v)) throw badRequest(op, `"${name}" must be an object`);
  return v;
}
