/**
 * What an operation on a pair runs against: PairHost. Two hosts exist, the
 * daemon's served pair (lib/daemon/served-host.ts) and a pair opened in this
 * process (local.ts); every operation in operations.ts is written once
 * against this interface. Where the two really differ (a scan pass in the
 * background or to the end, verify against the table in force or offline),
 * the host decides; the operation does not.
 */
import type { PairRecord, Store } from '../store/db.js';
import type { PairRuntime } from './pair.js';
import type { PairStatus, TrackAction } from './ops.js';
import type { PairConfig } from '../health/config.js';
import type { VerifyReport } from '../meta/verify.js';
import type { Scanner } from '../health/scanner.js';

export interface ScanStatus {
  inProgress: boolean;
  cursorBlock: number;
  totalBlocks: number;
  passesCompleted: number;
  current: unknown;
  last: unknown;
}

export function scanStatusOf(scanner: Scanner): ScanStatus {
  const st = scanner.state;
  return { inProgress: scanner.inPass, cursorBlock: st.cursorBlock, totalBlocks: scanner.totalBlocks, passesCompleted: st.passesCompleted, current: st.currentSummary, last: st.lastSummary };
}

export interface PairHost {
  readonly store: Store;
  readonly record: PairRecord;
  /** The opened pair: the one served, or (in-process) opened under its device lock on first use. */
  runtime(): PairRuntime;
  /** Checks the metadata, rewriting what is behind or damaged when `repair`. */
  verify(repair: boolean): VerifyReport;
  config(): PairConfig;
  /** Validates, applies and persists; returns the settings in force. */
  updateConfig(changes: Partial<PairConfig>): PairConfig;
  /** Starts a scan pass (served: in the background; in-process: runs it to the end). */
  requestScan(restart: boolean): ScanStatus;
  scanStatus(): ScanStatus;
  /**
   * Tracking of written blocks for an evacuation (served only): start stacks
   * the tracking layer and returns [its token]; take returns the blocks
   * written since the last take (ascending); stop removes it. take and stop
   * name the token, and a token that is not the tracking in force (another
   * start replaced it, or the daemon restarted) is refused, never answered
   * with "nothing written".
   */
  track(action: TrackAction, token: number): number[];
  /** What only a serving daemon knows (counters, handles, mount point); {} in-process. */
  live(): Partial<PairStatus>;
}
