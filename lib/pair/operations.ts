/**
 * Every operation on a pair, declared once: PAIR_OPERATIONS maps its name to
 * the check of its request (untrusted JSON: every field, and no others) and
 * its run() against a PairHost. The control protocol's pair requests, the
 * daemon's dispatch and the PairOps that CLI commands call are all derived
 * from this table; a transport (in-process: local.ts; the daemon's socket:
 * lib/daemon/control.ts) only carries a request to run() and the result back.
 *
 * Adding an operation = one entry here + one CLI handler.
 */
import { RemapfsError } from '../errors.js';
import { parseConfigValue, type PairConfig } from '../health/config.js';
import { healthReport } from '../health/report.js';
import { importBadSectors } from '../rescue/bad-sectors.js';
import { type PairStatus, pairStatus, remapSectors, TRACK_ACTIONS } from './ops.js';
import type { PairHost } from './host.js';
import { badRequest, booleanField, countField, countsField, isObject, objectField, oneOfField, stringField } from './request-fields.js';

export interface PairOperation<A, R> {
  /** Fields of the request besides op and pair. */
  fields: readonly string[];
  /** Checks them (see request-fields.ts); `op` names the operation in errors. */
  parse(raw: Record<string, unknown>, op: string): A;
  run(host: PairHost, args: A): R;
  /** A daemon answers for a pair it does not serve (from the database alone). */
  unserved?: boolean;
  /** Only a serving daemon can run it (it changes state that lives as long as the daemon). */
  servedOnly?: boolean;
  /** How long the CLI waits for the daemon's answer (default: control.ts). */
  timeoutMs?: number;
}

function op<A, R>(o: PairOperation<A, R>): PairOperation<A, R> {
  return o;
}

const none = (): Record<never, never> => ({});

/** Setting changes: every key a setting, every value valid for it (health/config.ts). */
function configChanges(raw: Record<string, unknown>, name: string): Partial<PairConfig> {
  const changes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(objectField(name, raw, 'changes'))) {
    try {
      changes[k] = parseConfigValue(k, v);
    } catch (err) {
      throw new RemapfsError('config', String(raw.pair), err instanceof Error ? err.message : String(err));
    }
  }
  return changes;
}

export const PAIR_OPERATIONS = {
  status: op({ fields: [], parse: none, run: (h): PairStatus => ({ ...pairStatus(h.store, h.record), ...h.live() }), unserved: true }),
  remap: op({ fields: ['sectors'], parse: (r, o) => ({ sectors: countsField(o, r, 'sectors') }), run: (h, a) => remapSectors(h.runtime(), a.sectors) }),
  verify: op({ fields: ['repair'], parse: (r, o) => ({ repair: booleanField(o, r, 'repair') }), run: (h, a) => h.verify(a.repair) }),
  config: op({ fields: ['changes'], parse: (r, o) => ({ changes: configChanges(r, o) }), run: (h, a) => (Object.keys(a.changes).length ? h.updateConfig(a.changes) : h.config()) }),
  scan: op({ fields: ['restart'], parse: (r, o) => ({ restart: booleanField(o, r, 'restart') }), run: (h, a) => h.requestScan(a.restart) }),
  'scan-status': op({ fields: [], parse: none, run: (h) => h.scanStatus() }),
  health: op({ fields: [], parse: none, run: (h) => healthReport(h.store, h.record) }),
  track: op({ fields: ['action', 'token'], parse: (r, o) => ({ action: oneOfField(o, r, 'action', TRACK_ACTIONS), token: countField(o, r, 'token', 0) }), run: (h, a) => h.track(a.action, a.token), servedOnly: true }),
  'import-bad': op({ fields: ['sectors'], parse: (r, o) => ({ sectors: countsField(o, r, 'sectors') }), run: (h, a) => importBadSectors(h.runtime().device, a.sectors), timeoutMs: 600000 }),
};

type Table = typeof PAIR_OPERATIONS;
export type OpName = keyof Table;
export type OpArgs<K extends OpName> = ReturnType<Table[K]['parse']>;
export type OpResult<K extends OpName> = ReturnType<Table[K]['run']>;
/** A pair request as it travels over the control socket: op, pair, and the operation's fields. */
export type PairRequest = { [K in OpName]: { op: K; pair: string } & OpArgs<K> }[OpName];
/** A request after its check. */
export interface CheckedRequest<K extends OpName = OpName> {
  op: K;
  pair: string;
  args: OpArgs<K>;
}

/** The operations on one pair, as CLI handlers call them. */
export type PairOps = { [K in OpName]: (args: OpArgs<K>) => Promise<OpResult<K>> };
/** Carries one request to its operation's run() and the result back. */
export type Transport = <K extends OpName>(op: K, args: OpArgs<K>) => Promise<OpResult<K>>;

export const OP_NAMES = Object.keys(PAIR_OPERATIONS) as OpName[];

export function isPairOp(name: unknown): name is OpName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(PAIR_OPERATIONS, name);
}

export function operation<K extends OpName>(name: K): PairOperation<OpArgs<K>, OpResult<K>> {
  return PAIR_OPERATIONS[name] as unknown as PairOperation<OpArgs<K>, OpResult<K>>;
}

export function pairOps(transport: Transport): PairOps {
  return Object.fromEntries(OP_NAMES.map((name) => [name, (args: never) => transport(name, args)])) as unknown as PairOps;
}

/** Checks a pair request (untrusted JSON); throws one RemapfsError and changes nothing when it is malformed. */
export function checkPairRequest(raw: unknown): CheckedRequest {
  if (!isObject(raw)) throw badRequest('', 'a request must be a JSON object');
  const name = raw.op;
  if (!isPairOp(name)) throw badRequest('', typeof name === 'string' ? `unknown operation "${name}"` : '"op" must be a string');
  const entry = operation(name);
  for (const k of Object.keys(raw)) {
    if (k !== 'op' && k !== 'pair' && !entry.fields.includes(k)) throw badRequest(name, `unknown field "${k}"`);
  }
  const pair = stringField(name, raw, 'pair');
  return { op: name, pair, args: entry.parse(raw, name) };
}

/** The request for `op` on `pair` with `args`, as sent over the socket. */
export function toRequest<K extends OpName>(op: K, pair: string, args: OpArgs<K>): PairRequest {
  return { ...args, op, pair } as PairRequest;
}

export function runOperation<K extends OpName>(host: PairHost, op: K, args: OpArgs<K>): OpResult<K> {
  return operation(op).run(host, args);
}
