/**
 * Health end to end, on a simulated failing main: the scanner, its resumption
 * after a kill, every exit-status bit of `remapfs health`, the Prometheus file,
 * live settings through the mount and the CLI, and the SVG map.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { labPerTest } from '../helpers/lab-hooks.js';
import { dropCaches, type Lab, sleep, waitFor } from '../../lib/lab/lab.js';
import { spareLayout } from '../../lib/format/layout.js';
import { parseExposition, wellFormed } from '../helpers/formats.js';
import { STATE_COLOURS } from '../../lib/health/map.js';

const MiB = 1024 * 1024;
const B = 4096;

interface HealthJson {
  exitStatus: number;
  pairs: Array<{ pair: string; pendingBlocks: number; remappedBlocks: number; remapsByReason: Record<string, number>; problems: Record<string, boolean>; scan: { passesCompleted: number } }>;
}

function writeBlocks(file: string, blocks: number[], fill: (b: number) => Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (const b of blocks) fs.writeSync(fd, fill(b), 0, B, b * B);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readBlock(file: string, block: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(B);
    fs.readSync(fd, buf, 0, B, block * B);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function blockData(block: number): Buffer {
  const seed = crypto.createHash('sha256').update(`block ${block}`).digest();
  const buf = Buffer.alloc(B);
  for (let o = 0; o < B; o += seed.length) seed.copy(buf, o);
  return buf;
}

describe('health', () => {
  const lab = labPerTest();

  async function failingPair(opts: { bad?: string; slow?: string; delayMs?: number; mainBytes?: number; spareBytes?: number } = {}) {
    const image = lab.image('main.img', opts.mainBytes ?? 32 * MiB);
    const spare = lab.image('spare.img', opts.spareBytes ?? 8 * MiB);
    const simMnt = lab.mkdir('sim');
    const args: string[] = [];
    if (opts.bad) args.push('--bad', opts.bad);
    if (opts.slow) args.push('--slow', opts.slow, '--delay-ms', String(opts.delayMs ?? 80));
    await lab.startSimulator(image, simMnt, args);
    lab.ok(['init', 'h', '--main', path.join(simMnt, 'disk'), '--spare', spare]);
    return { image, spare, simMnt, mnt: lab.mkdir('mnt') };
  }

  it('scan copies slow blocks to the spare with their data and marks unreadable ones pending', async () => {
    const { simMnt, mnt } = await failingPair();
    await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'h');
    writeBlocks(vfile, [100, 101, 1500, 3750], blockData);
    // Now the disk degrades: blocks 100 and 1500 get slow, block 3750 unreadable.
    lab.ok(['fault', simMnt, 'add', '--slow', '--delay-ms', '80', `${100 * 8 + 3}`, `${1500 * 8}-${1500 * 8 + 7}`]);
    lab.ok(['fault', simMnt, 'add', `${3750 * 8 + 2}`]);
    const r = lab.cli(['scan', 'h', '--json']);
    expect(r.status).toBe(0);
    const summary = (JSON.parse(r.stdout) as { summary: { blocksScanned: number; unreadableBlocks: number; remappedSlow: number; slowBlocks: number } }).summary;
    expect(summary).toMatchObject({ blocksScanned: 8192, unreadableBlocks: 1, remappedSlow: 2, slowBlocks: 2 });
    expect(r.stderr).toMatch(/scan h: .*100\.0%/); // plain progress lines when not on a terminal
    const h = JSON.parse(lab.cli(['health', 'h', '--json']).stdout) as HealthJson;
    expect(h.pairs[0]).toMatchObject({ pendingBlocks: 1, remappedBlocks: 2, remapsByReason: { 'scan-slow': 2 } });
    // Exactly the bad block is pending, and exactly the slow ones were moved.
    expect(remapRows(lab)).toEqual([
      { main_block: 100, reason: 'scan-slow', state: 'remapped' },
      { main_block: 1500, reason: 'scan-slow', state: 'remapped' },
      { main_block: 3750, reason: 'read-error', state: 'pending' },
    ]);
    // The slow blocks' data survived the move, and the spare now answers for them at full speed.
    dropCaches();
    for (const b of [100, 101, 1500]) expect(readBlock(vfile, b).equals(blockData(b))).toBe(true);
    const text = lab.ok(['scan', 'h']);
    expect(text).toMatch(/unreadable \(now pending\): 1/);
    expect(text).toMatch(/slow: 0/);
  });

  it('a background scan killed with the daemon resumes after the restart', async () => {
    const { mnt } = await failingPair({ mainBytes: 24 * MiB });
    lab.ok(['config', 'h', 'scanIntervalHours=0.001', 'scanRateMiBps=2', 'scanIdleMs=0']);
    const d1 = await lab.startDaemon(mnt);
    await waitFor('the scan to get going', () => scanState(lab).cursor > 0, 20000);
    await sleep(1500);
    await lab.killDaemon(d1);
    lab.ok(['unmount', mnt]);
    const stopped = scanState(lab);
    expect(stopped.inProgress).toBe(true);
    expect(stopped.cursor).toBeGreaterThan(0);
    expect(stopped.cursor).toBeLessThan(6144);
    lab.ok(['config', 'h', 'scanRateMiBps=64']);
    await lab.startDaemon(mnt);
    await waitFor('the pass to finish', () => scanState(lab).passes === 1, 30000);
    const done = scanState(lab);
    expect(done.lastBlocksScanned).toBe(6144); // one whole pass, counted across the restart
    expect(done.scanStarts).toBe(1); // resumed, not restarted
  });

  it('sets every exit-status bit for its cause, and exits 0 for a clean pair', async () => {
    const spareBytes = 1 * MiB; // 241 pool blocks
    const { spare, simMnt, mnt } = await failingPair({ spareBytes, mainBytes: 16 * MiB });
    // bit 0: a usage error.
    expect(lab.cli(['health', '--days', 'soon']).status).toBe(1);
    // Clean: exit 0 (the first report records the baseline); --quiet then prints nothing.
    expect(lab.cli(['health']).status).toBe(0);
    expect(lab.cli(['health', '--quiet'])).toMatchObject({ status: 0, stdout: '' });
    await lab.startDaemon(mnt);
    const vfile = path.join(mnt, 'h');
    // bit 6: new remaps since the last report; only once.
    lab.ok(['remap', 'h', '8']);
    expect(lab.cli(['health']).status).toBe(64);
    expect(lab.cli(['health']).status).toBe(0);
    // bit 3: data lost (a pending block).
    lab.ok(['fault', simMnt, 'add', '800']);
    dropCaches();
    expect(() => readBlock(vfile, 100)).toThrow(/EIO/);
    expect(lab.cli(['health']).status).toBe(8);
    writeBlocks(vfile, [100], blockData); // heals it: pending -> remapped
    expect(lab.cli(['health']).status).toBe(64);
    // bit 4: spare use above the warning threshold.
    lab.ok(['config', 'h', 'spareWarnPercent=1']);
    lab.ok(['remap', 'h', ...Array.from({ length: 3 }, (_, i) => String((200 + i) * 8))]);
    expect(lab.cli(['health', '--days', '1']).status).toBe(16 + 64);
    // bit 7: exhaustion predicted within N days (6 remaps today, 235 free: about 130 days at the smoothed rate).
    expect(lab.cli(['health', '--days', '365']).status & 128).toBe(128);
    expect(lab.cli(['health', '--days', '30']).status & 128).toBe(0);
    // bit 5: spare exhausted (and bits 4 and 6 with it; not bit 7, a prediction). A remap that needs more than is free is refused whole.
    const st = JSON.parse(lab.ok(['status', 'h', '--json'])) as { spareBlocksTotal: number; spareBlocksUsed: number };
    const free = st.spareBlocksTotal - st.spareBlocksUsed;
    expect(st.spareBlocksTotal).toBe(spareLayout(spareBytes, B).poolBlocks);
    const r = lab.cli(['remap', 'h', ...Array.from({ length: free + 1 }, (_, i) => String((300 + i) * 8))]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${free + 1} blocks need a spare block, but only ${free} are free`);
    lab.ok(['remap', 'h', ...Array.from({ length: free }, (_, i) => String((300 + i) * 8))]);
    const full = lab.cli(['health', '--json']);
    expect(full.status & (128 | 32 | 16 | 64)).toBe(32 | 16 | 64);
    expect((JSON.parse(full.stdout) as HealthJson).exitStatus).toBe(full.status);
    // bit 2: metadata inconsistent.
    const layout = spareLayout(spareBytes, B);
    const fd = fs.openSync(spare, 'r+');
    fs.writeSync(fd, Buffer.alloc(512, 0xee), 0, 512, (layout.slots[2]?.startBlock ?? 0) * B);
    fs.closeSync(fd);
    expect(lab.cli(['health']).status & 4).toBe(4);
    lab.ok(['repair', 'h']);
    expect(lab.cli(['health']).status & 4).toBe(0);
    // bit 1: a device is missing.
    lab.ok(['unmount', mnt]);
    fs.renameSync(spare, spare + '.gone');
    const missing = lab.cli(['health']);
    expect(missing.status & 2).toBe(2);
    expect(missing.stdout).toContain('spare');
    fs.renameSync(spare + '.gone', spare);
  });

  it('writes a Prometheus textfile atomically that parses', async () => {
    const { mnt } = await failingPair();
    await lab.startDaemon(mnt);
    lab.ok(['remap', 'h', '16', '24']);
    const prom = lab.path('remapfs.prom');
    const r = lab.cli(['health', '--prometheus', prom]);
    expect(r.status).toBe(64);
    const parsed = parseExposition(fs.readFileSync(prom, 'utf8'));
    expect(parsed.samples.get('remapfs_remapped_blocks')?.[0]).toMatchObject({ labels: { pair: 'h' }, value: 2 });
    expect(parsed.types.get('remapfs_health_score')).toBe('gauge');
    expect(parsed.samples.get('remapfs_health_problem')?.find((s) => s.labels.problem === 'newRemaps')?.value).toBe(1);
    expect(fs.readdirSync(lab.dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('settings written through the mount and the CLI change the running daemon and survive a restart', async () => {
    const { simMnt, mnt } = await failingPair();
    await lab.startDaemon(mnt);
    const cfgFile = path.join(mnt, '.remapfs', 'h', 'config');
    lab.ok(['fault', simMnt, 'add', '--slow', '--delay-ms', '80', '2000-2007']);
    // Through the mount: raise the remap threshold above the delay, so a slow block is only recorded.
    fs.writeFileSync(cfgFile, 'latencyRemapMs=1000\nlatencyCriticalMs=2000\n');
    expect(JSON.parse(fs.readFileSync(cfgFile, 'utf8'))).toMatchObject({ latencyRemapMs: 1000, latencyCriticalMs: 2000 });
    expect(() => fs.writeFileSync(cfgFile, 'latencyRemapMs=banana\n')).toThrow(/EINVAL/);
    let s = JSON.parse(lab.ok(['scan', 'h', '--json'])) as { summary: { slowBlocks: number; remappedSlow: number } };
    expect(s.summary).toMatchObject({ slowBlocks: 1, remappedSlow: 0 });
    const stats = JSON.parse(fs.readFileSync(path.join(mnt, '.remapfs', 'h', 'stats'), 'utf8')) as { remappedBlocks: number };
    expect(stats.remappedBlocks).toBe(0);
    // Through the CLI: back to 50 ms; the next scan moves the block.
    expect(lab.ok(['config', 'h', 'latencyRemapMs=50'])).toContain('latencyRemapMs=50');
    s = JSON.parse(lab.ok(['scan', 'h', '--json'])) as { summary: { slowBlocks: number; remappedSlow: number } };
    expect(s.summary).toMatchObject({ slowBlocks: 1, remappedSlow: 1 });
    // Both changes persist across a restart.
    lab.ok(['unmount', mnt]);
    await lab.startDaemon(mnt);
    expect(JSON.parse(fs.readFileSync(cfgFile, 'utf8'))).toMatchObject({ latencyRemapMs: 50, latencyCriticalMs: 2000 });
    expect(lab.ok(['config', 'h', 'latencyCriticalMs'])).toBe('latencyCriticalMs=2000\n');
    const health = JSON.parse(fs.readFileSync(path.join(mnt, '.remapfs', 'h', 'health'), 'utf8')) as { remappedBlocks: number; version: number };
    expect(health).toMatchObject({ version: 1, remappedBlocks: 1 });
  });

  it('draws the map of a pair as SVG whose cells match its states', async () => {
    const { simMnt, mnt } = await failingPair({ mainBytes: 16 * MiB });
    await lab.startDaemon(mnt);
    lab.ok(['remap', 'h', String(10 * 8), String(11 * 8)]);
    lab.ok(['fault', simMnt, 'add', String(3000 * 8)]);
    dropCaches();
    expect(() => readBlock(path.join(mnt, 'h'), 3000)).toThrow(/EIO/);
    const svgFile = lab.path('map.svg');
    lab.ok(['map', 'h', '--svg', svgFile, '--columns', '64']);
    const svg = fs.readFileSync(svgFile, 'utf8');
    expect(wellFormed(svg)).toBe(true);
    const cellsOf = (text: string) =>
      [...text.matchAll(/fill="(#[0-9a-f]{6})" data-state="(\w+)" data-first-block="(\d+)" data-end-block="(\d+)"/g)].map((m) => ({ fill: m[1], state: m[2] as keyof typeof STATE_COLOURS, first: Number(m[3]), end: Number(m[4]) }));
    let cells = cellsOf(svg);
    expect(cells).toHaveLength(4096);
    for (const c of cells) expect(c.fill).toBe(STATE_COLOURS[c.state]); // every cell is drawn in its state's colour
    const at = (b: number) => cells.find((c) => c.first <= b && b < c.end)?.state;
    expect(at(10)).toBe('remapped');
    expect(at(3000)).toBe('pending');
    expect(at(2000)).toBe('unscanned'); // never scanned yet
    // A slow block that stays on main (the remap threshold is above its delay) shows as slow after a scan.
    lab.ok(['config', 'h', 'latencyRemapMs=1000', 'latencyCriticalMs=2000']);
    lab.ok(['fault', simMnt, 'add', '--slow', '--delay-ms', '80', `${2500 * 8}-${2500 * 8 + 7}`]);
    lab.ok(['scan', 'h']);
    lab.ok(['map', 'h', '--svg', svgFile]);
    const after = fs.readFileSync(svgFile, 'utf8');
    expect(wellFormed(after)).toBe(true);
    cells = cellsOf(after);
    for (const c of cells) expect(c.fill).toBe(STATE_COLOURS[c.state]);
    expect(at(2000)).toBe('ok');
    expect(at(16 * MiB / 4096 - 1)).toBe('ok'); // the main label's block, moved at init, is not counted as a remap (as in status)
    expect(after).toContain(`remapped (${(JSON.parse(lab.ok(['status', 'h', '--json'])) as { remappedBlocks: number }).remappedBlocks})`);
    expect(at(2500)).toBe('slow');
    expect(at(10)).toBe('remapped');
    expect(at(3000)).toBe('pending');
    expect(lab.ok(['status', 'h'])).toMatch(/map\s+\[R*\.+/);
  });
});

/** The pair's remaps other than the main label's, straight from the database. */
function remapRows(lab: Lab): Array<{ main_block: number; reason: string; state: string }> {
  const db = new Database(lab.dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT main_block, reason, state FROM remaps WHERE reason != 'label' ORDER BY main_block").all() as Array<{ main_block: number; reason: string; state: string }>;
  } finally {
    db.close();
  }
}

function scanState(lab: Lab): { cursor: number; inProgress: boolean; passes: number; lastBlocksScanned: number; scanStarts: number } {
  // Read straight from the database (the daemon may be dead).
  const db = new Database(lab.dbPath, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT cursor_block, pass_started_at, passes_completed, last_summary FROM scan_state').get() as
      | { cursor_block: number; pass_started_at: number | null; passes_completed: number; last_summary: string | null }
      | undefined;
    const starts = db.prepare("SELECT count(*) FROM events WHERE kind = 'scan-start'").pluck().get() as number;
    const summaries = row?.last_summary ? (JSON.parse(row.last_summary) as { last: { blocksScanned: number } | null }) : { last: null };
    return { cursor: row?.cursor_block ?? 0, inProgress: row?.pass_started_at != null, passes: row?.passes_completed ?? 0, lastBlocksScanned: summaries.last?.blocksScanned ?? 0, scanStarts: starts };
  } finally {
    db.close();
  }
}
