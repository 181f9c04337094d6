/**
 * Output files a command writes (map --svg, export --ddrescue-map,
 * health --prometheus, evacuate --to and --mapfile) never replace a pair's
 * device or the database, by any name; a refused or failed write changes
 * nothing: no device, no database row (health's report state), no new file.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { labPerTest } from '../helpers/lab-hooks.js';
import type { CliResult, Lab } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;
const HINT = "name a file of its own: remapfs never writes over a pair's device or its database";

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function lines(r: CliResult): string[] {
  return r.stderr.split('\n').filter(Boolean);
}

/** Two pairs in one database; every file in the lab's directory with its hash. */
function setUp(lab: Lab): { main: string; spare: string; qMain: string; snapshot: () => Record<string, string> } {
  const main = lab.image('main.img', 8 * MiB);
  const spare = lab.image('spare.img', 4 * MiB);
  const qMain = lab.image('q-main.img', 8 * MiB);
  lab.ok(['init', 'p', '--main', main, '--spare', spare]);
  lab.ok(['init', 'q', '--main', qMain, '--spare', lab.image('q-spare.img', 4 * MiB)]);
  const snapshot = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const f of fs.readdirSync(lab.dir).sort()) {
      const st = fs.lstatSync(lab.path(f));
      out[f] = st.isSymbolicLink() ? `-> ${fs.readlinkSync(lab.path(f))}` : st.isFile() ? sha(lab.path(f)) : 'dir';
    }
    return out;
  };
  return { main, spare, qMain, snapshot };
}

describe('output files that are a pair device or the database', () => {
  const lab = labPerTest();

  it.each([
    ['map --svg onto the main', (l: Lab) => ['map', 'p', '--svg', l.path('main.img')], 'write', 'main.img', 'is the main device of pair p'],
    ['export --ddrescue-map onto the spare', (l: Lab) => ['export', 'p', '--ddrescue-map', l.path('spare.img')], 'write', 'spare.img', 'is the spare device of pair p'],
    ['health --prometheus onto the main', (l: Lab) => ['health', 'p', '--prometheus', l.path('main.img')], 'write', 'main.img', 'is the main device of pair p'],
    ['map --svg onto the database', (l: Lab) => ['map', 'p', '--svg', l.dbPath], 'write', 'remapfs.db', 'is the database'],
    ['evacuate --to the database', (l: Lab) => ['evacuate', 'p', '--to', l.dbPath], 'evacuate', 'remapfs.db', 'is the database'],
    ['map --svg of one pair onto the main of another', (l: Lab) => ['map', 'p', '--svg', l.path('q-main.img')], 'write', 'q-main.img', 'is the main device of pair q'],
    ['export --ddrescue-map onto the database -wal file (not there yet)', (l: Lab) => ['export', 'p', '--ddrescue-map', `${l.dbPath}-wal`], 'write', 'remapfs.db-wal', "is the database's -wal file"],
    ['health --prometheus onto the -journal file (not there yet)', (l: Lab) => ['health', '--prometheus', `${l.dbPath}-journal`], 'write', 'remapfs.db-journal', "is the database's -journal file"],
    ['evacuate --mapfile onto the spare', (l: Lab) => ['evacuate', 'p', '--to', l.path('out.img'), '--mapfile', l.path('spare.img')], 'evacuate', 'spare.img', 'is the spare device of pair p'],
    ['evacuate --mapfile onto its own target', (l: Lab) => ['evacuate', 'p', '--to', l.path('out.img'), '--mapfile', l.path('out.img')], 'evacuate', 'out.img', 'is the evacuation target (--to)'],
  ])('%s: exit 1, one line, nothing changed', (_what, args, op, name, cause) => {
    const { snapshot } = setUp(lab);
    const before = snapshot();
    const r = lab.cli(args(lab));
    expect(lines(r)).toEqual([`remapfs: ${op} ${lab.path(name)}: ${cause} (${HINT})`]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(snapshot()).toEqual(before);
  });

  it('a symlink or a hard link to the main, and a path through a symlinked directory, are the main too', () => {
    const { main, snapshot } = setUp(lab);
    fs.symlinkSync(main, lab.path('link.img'));
    fs.linkSync(main, lab.path('hard.img'));
    fs.symlinkSync(lab.dir, lab.path('dirlink'));
    const before = snapshot();
    for (const [args, shown] of [
      [['evacuate', 'p', '--to', lab.path('link.img')], 'link.img'],
      [['evacuate', 'p', '--to', lab.path('hard.img')], 'hard.img'],
      [['map', 'p', '--svg', lab.path('hard.img')], 'hard.img'],
      [['export', 'p', '--ddrescue-map', lab.path('dirlink', 'main.img')], path.join('dirlink', 'main.img')],
    ] as const) {
      const r = lab.cli([...args]);
      const op = args[0] === 'evacuate' ? 'evacuate' : 'write';
      expect(lines(r)).toEqual([`remapfs: ${op} ${lab.path(shown)}: is the main device of pair p (${main}) (${HINT})`]);
      expect(r.status).toBe(1);
    }
    expect(snapshot()).toEqual(before);
  });

  it('a loop device over the main is refused as an evacuation target', () => {
    const { main, snapshot } = setUp(lab);
    const loop = lab.attachLoop(main, { directIo: false, sectorSize: 512 });
    const before = snapshot();
    const r = lab.cli(['evacuate', 'p', '--to', loop, '--mapfile', lab.path('loop.map')]);
    expect(lines(r)).toEqual([`remapfs: evacuate ${loop}: shares storage with the main device of pair p (${main}) (${HINT})`]);
    expect(r.status).toBe(1);
    expect(snapshot()).toEqual(before);
  });

  it('a regular new file next to them is still written', () => {
    const { snapshot } = setUp(lab);
    const before = snapshot();
    expect(lab.cli(['map', 'p', '--svg', lab.path('p.svg')]).status).toBe(0);
    expect(lab.cli(['export', 'p', '--ddrescue-map', lab.path('p.map')]).status).toBe(0);
    const after = snapshot();
    expect(Object.keys(after).filter((f) => !(f in before))).toEqual(['p.map', 'p.svg']);
    for (const f of Object.keys(before)) expect(after[f]).toBe(before[f]);
  });
});

describe('health --prometheus that cannot be written', () => {
  const lab = labPerTest();

  it.each([
    ['a directory', (l: Lab) => l.mkdir('dir'), 'is not a regular file'],
    ['a symlink to a directory', (l: Lab) => (fs.symlinkSync(l.mkdir('dir'), l.path('dirlink')), l.path('dirlink')), 'is a symbolic link'],
    ['a file in a missing directory', (l: Lab) => l.path('missing', 'x.prom'), 'ENOENT: no such file or directory'],
    ['/dev/null', () => '/dev/null', 'is not a regular file'],
  ])('%s: exit 1, one line, and the new remaps are still news to the next report', (_what, target, cause) => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 8 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    expect(lab.cli(['health', 'p']).status).toBe(0); // the report state now has no remaps
    lab.ok(['remap', 'p', '100']);
    const db = sha(lab.dbPath);
    const file = target(lab);
    for (let i = 0; i < 2; i++) {
      const r = lab.cli(['health', 'p', '--prometheus', file]);
      expect(lines(r)).toEqual([expect.stringMatching(new RegExp(`^remapfs: write ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${cause} \\(`))]);
      expect(r.status).toBe(1);
      expect(sha(lab.dbPath)).toBe(db);
    }
    const next = lab.cli(['health', 'p', '--json']);
    expect((JSON.parse(next.stdout) as { exitStatus: number }).exitStatus & 64).toBe(64);
    expect(lab.cli(['health', 'p']).status & 64).toBe(0);
  });
});

describe('evacuate whose source cannot be opened', () => {
  const lab = labPerTest();

  it('leaves no target and no mapfile behind, and an existing target untouched', () => {
    const spare = lab.image('spare.img', 4 * MiB);
    lab.ok(['init', 'p', '--main', lab.image('main.img', 8 * MiB), '--spare', spare]);
    fs.rmSync(spare);
    const db = sha(lab.dbPath);
    const out = lab.path('out.img');
    const r = lab.cli(['evacuate', 'p', '--to', out]);
    expect(lines(r)).toEqual([expect.stringMatching(/^remapfs: open spare of pair p: open .*spare\.img: ENOENT/)]);
    expect(r.status).toBe(1);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(`${out}.map`)).toBe(false);
    const existing = lab.path('existing.img');
    fs.writeFileSync(existing, 'precious\n');
    const again = lab.cli(['evacuate', 'p', '--to', existing]);
    expect(again.status).toBe(1);
    expect(fs.readFileSync(existing, 'utf8')).toBe('precious\n');
    expect(fs.existsSync(`${existing}.map`)).toBe(false);
    expect(sha(lab.dbPath)).toBe(db);
  });
});
