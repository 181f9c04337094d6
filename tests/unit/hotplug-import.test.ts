/**
 * Hot-plug's import decision (issue 13, "unbounded work"): a pair found in a
 * watched directory whose import fails is tried once and logged once, and not
 * tried again on later rescans until one of its devices changes; then it is
 * tried again. One refused because the slots changed after the worker read
 * them is tried again at every rescan. The daemon is a fake (DaemonPairs), the importer a counting fake
 * and the worker's table read a fake; the devices are real files, since the
 * decision is keyed on their stat.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { DiscoveryReport } from '../../lib/discovery/discover.js';
import { HotPlug, type DaemonPairs } from '../../lib/daemon/hotplug.js';
import { StaleTableError } from '../../lib/discovery/importer.js';
import { RemapfsError } from '../../lib/errors.js';
import type { PairRecord, Store } from '../../lib/store/db.js';

const UUID = '6f1c2a4e-0000-4000-8000-000000000001';

function reportOf(mainPath: string, sparePath: string): DiscoveryReport {
  return {
    version: 1,
    scanned: { blockDevices: 0, files: 2, skipped: [] },
    pairs: [
      {
        uuid: UUID,
        name: 'hp',
        status: 'complete',
        main: { path: mainPath, label: { uuid: UUID, name: 'hp', blockSize: 4096, mainBytes: 1 << 20, labelBlock: 255, createdAt: 0 }, hardwareId: null },
        spare: { path: sparePath, uuid: UUID, name: 'hp', sequence: 3, validSlots: 5, blockSize: 4096, mainBytes: 1 << 20, tablePrint: 'x', tableChecked: true, hardwareId: null },
        losers: [],
        conflict: null,
        known: null,
      },
    ],
  };
}

describe('hot-plug import of a pair found in a watched directory', () => {
  let dir: string;
  let mainPath: string;
  let sparePath: string;
  let logs: string[];
  let attempts: number;
  let tableReads: number;
  let hp: HotPlug;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-hotplug-'));
    mainPath = path.join(fs.realpathSync(dir), 'm.img');
    sparePath = path.join(fs.realpathSync(dir), 's.img');
    fs.writeFileSync(mainPath, Buffer.alloc(4096));
    fs.writeFileSync(sparePath, Buffer.alloc(4096));
    logs = [];
    attempts = 0;
    tableReads = 0;
    const refuse = (): never => {
      attempts++;
      throw new RemapfsError('import', 'hp', 'a pair with this name already exists', 'choose another name');
    };
    hp = new HotPlug(hpDaemon(), refuse, () => {
      tableReads++;
      return Promise.resolve({ rejected: [] });
    });
  });

  function hpDaemon(): DaemonPairs {
    const store = { pairs: { byUuid: (): PairRecord | undefined => undefined } } as unknown as Store;
    return {
      store,
      mountpoint: path.join(dir, 'mnt'),
      watchDirs: [dir],
      log: (line) => logs.push(line),
      served: () => undefined,
      attached: () => [],
      gone: new Set(),
      notOpened: new Map(),
      tryOpen: () => undefined,
      tryOpenStepped: () => Promise.resolve({ value: undefined, stats: { steps: 0, busyMs: 0, longestMs: 0, longestPhase: '', stepMs: [], elapsedMs: 0, phases: new Map() } }),
      add: () => undefined,
      attachLoop: () => undefined,
      userIoOps: () => 0,
      remove: () => undefined,
    };
  }

  /** One rescan's report applied, and the import it started finished. */
  async function rescan(report: DiscoveryReport): Promise<void> {
    hp.apply(report);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is tried and logged once while its devices are unchanged, and tried again after one changes', async () => {
    for (let k = 0; k < 4; k++) await rescan(reportOf(mainPath, sparePath));
    expect(attempts).toBe(1);
    // Its table was read (in the worker) once too.
    expect(tableReads).toBe(1);
    expect(logs.filter((l) => l.includes('cannot import the pair found at'))).toEqual([
      `remapfs: cannot import the pair found at ${mainPath} and ${sparePath}: import hp: a pair with this name already exists (choose another name)`,
    ]);

    // The spare is rewritten (a new size and times): the next rescan tries again, once.
    fs.appendFileSync(sparePath, Buffer.alloc(4096));
    await rescan(reportOf(mainPath, sparePath));
    await rescan(reportOf(mainPath, sparePath));
    expect(attempts).toBe(2);

    // The main's times alone change (touched): tried again.
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(mainPath, later, later);
    await rescan(reportOf(mainPath, sparePath));
    await rescan(reportOf(mainPath, sparePath));
    expect(attempts).toBe(3);
    expect(tableReads).toBe(3);
    // The same reason is not logged again.
    expect(logs.filter((l) => l.includes('cannot import the pair found at'))).toHaveLength(1);
  });

  it('is tried on every rescan when a device cannot be stat-ed (nothing to key the failure on)', async () => {
    const gone = path.join(fs.realpathSync(dir), 'gone.img');
    await rescan(reportOf(mainPath, gone));
    await rescan(reportOf(mainPath, gone));
    expect(attempts).toBe(2);
  });

  it('is tried again on the next rescan when the slots changed after the worker read them (the serving thread reads no table)', async () => {
    const stale = new HotPlug(hpDaemon(), () => {
      attempts++;
      throw new StaleTableError('import', sparePath, 'its metadata slots changed after the discovery worker read them', 'read again at the next rescan');
    }, () => {
      tableReads++;
      return Promise.resolve({ rejected: [] });
    });
    for (let k = 0; k < 3; k++) {
      stale.apply(reportOf(mainPath, sparePath));
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(attempts).toBe(3);
    expect(tableReads).toBe(3);
    expect(logs.filter((l) => l.includes('cannot import the pair found at'))).toHaveLength(1);
  });

  it('is not started again while its table is still being read', async () => {
    let release: () => void = () => undefined;
    const slow = new HotPlug(hpDaemon(), () => {
      attempts++;
      throw new RemapfsError('import', 'hp', 'refused');
    }, () => new Promise((resolve) => (release = () => resolve({ rejected: [] }))));
    slow.apply(reportOf(mainPath, sparePath));
    slow.apply(reportOf(mainPath, sparePath));
    slow.apply(reportOf(mainPath, sparePath));
    expect(attempts).toBe(0);
    release();
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(attempts).toBe(1);
  });
});
