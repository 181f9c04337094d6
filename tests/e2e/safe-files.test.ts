/**
 * Files remapfs writes: exact modes whatever the umask (database, its
 * directory, -wal/-shm, evacuation images and mapfiles), no write through a
 * symlink, and no mapfile next to a block device.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { labPerTest } from '../helpers/lab-hooks.js';
import { type CliResult, type Lab, REMAPFS_BIN } from '../../lib/lab/lab.js';

const MiB = 1024 * 1024;

/** Runs the CLI under umask 000, the worst case for file modes. */
function cliUmask0(lab: Lab, args: string[]): CliResult {
  const r = spawnSync('sh', ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, REMAPFS_BIN, ...args], { env: lab.env(), encoding: 'utf8', timeout: 120000 });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

describe('files remapfs writes', () => {
  const lab = labPerTest();

  it('creates the database 0600 in a directory 0700 under umask 000, and its -wal and -shm files 0600', async () => {
    const db = lab.path('state', 'sub', 'remapfs.db');
    const env = { ...lab.env(), REMAPFS_DB: db };
    const r = spawnSync('sh', ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, REMAPFS_BIN, 'init', 'p', '--main', lab.image('main.img', 16 * MiB), '--spare', lab.image('spare.img', 4 * MiB)], {
      env,
      encoding: 'utf8',
    });
    expect(r.stderr).toMatch(/pair p/);
    expect(r.status).toBe(0);
    expect(modeOf(db)).toBe(0o600);
    expect(modeOf(path.dirname(db))).toBe(0o700);
    expect(modeOf(lab.path('state'))).toBe(0o700);
    const old = process.umask(0);
    try {
      await lab.startDaemon(lab.mkdir('mnt'), [], env);
    } finally {
      process.umask(old);
    }
    expect(modeOf(`${db}-wal`)).toBe(0o600);
    expect(modeOf(`${db}-shm`)).toBe(0o600);
  });

  it('evacuate creates its image and mapfile 0600 under umask 000; an existing target keeps its mode', () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 8 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const to = lab.path('copy.img');
    const r = cliUmask0(lab, ['evacuate', 'p', '--to', to]);
    expect(r.stderr.split('\n').filter((l) => l && !/evacuate p/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    expect(modeOf(to)).toBe(0o600);
    expect(modeOf(`${to}.map`)).toBe(0o600);
    expect(fs.readdirSync(lab.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const existing = lab.image('existing.img', 8 * MiB);
    fs.chmodSync(existing, 0o640);
    expect(cliUmask0(lab, ['evacuate', 'p', '--to', existing]).status).toBe(0);
    expect(modeOf(existing)).toBe(0o640);
  });

  it('evacuate to a block device needs --mapfile, and writes nothing into /dev without it', () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 8 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const loop = lab.attachLoop(lab.image('target.img', 8 * MiB), { directIo: false });
    lab.onCleanup(`remove ${loop}.map`, () => fs.rmSync(`${loop}.map`, { force: true }));
    const r = lab.cli(['evacuate', 'p', '--to', loop]);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^remapfs: --to \/dev\/loop\d+ is a block device: name the mapfile with --mapfile/)]);
    expect(fs.existsSync(`${loop}.map`)).toBe(false);
    const mapfile = lab.path('target.map');
    expect(lab.cli(['evacuate', 'p', '--to', loop, '--mapfile', mapfile]).status).toBe(0);
    expect(fs.readFileSync(mapfile, 'utf8')).toMatch(/^0x00000000\s+0x00800000\s+\+$/m);
    expect(fs.existsSync(`${loop}.map`)).toBe(false);
  });

  it('health --prometheus and export refuse a target that is a symlink; the file it points to is untouched', () => {
    lab.ok(['init', 'p', '--main', lab.image('main.img', 8 * MiB), '--spare', lab.image('spare.img', 4 * MiB)]);
    const victim = lab.path('victim');
    fs.writeFileSync(victim, 'precious\n');
    const prom = lab.path('remapfs.prom');
    fs.symlinkSync(victim, prom);
    const h = lab.cli(['health', '--prometheus', prom]);
    expect(h.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^remapfs: write .*remapfs\.prom: is a symbolic link \(/)]);
    expect(h.status).not.toBe(0);
    const map = lab.path('p.map');
    fs.symlinkSync(victim, map);
    const e = lab.cli(['export', 'p', '--ddrescue-map', map]);
    expect(e.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^remapfs: write .*p\.map: is a symbolic link \(/)]);
    expect(e.status).toBe(1);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(fs.lstatSync(prom).isSymbolicLink()).toBe(true);
    // A regular target works, is readable by node_exporter (0644), and leaves no temp file.
    const real = lab.path('real.prom');
    lab.cli(['health', '--prometheus', real]);
    expect(fs.readFileSync(real, 'utf8')).toMatch(/^remapfs_health_score\{pair="p",/m);
    expect(modeOf(real)).toBe(0o644);
    expect(fs.readdirSync(lab.dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});
