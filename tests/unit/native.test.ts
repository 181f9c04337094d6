/**
 * The native helper (lib/native): flock across processes and the
 * PR_SET_IO_FLUSHER round trip. Each lock holder in another process is a child
 * node that loads the same compiled module; a child blocked in flock is seen
 * in /proc/locks (a "->" line), so no test waits on a clock. The prctl calls
 * run in a child too: the flag would otherwise stay on the jest worker.
 */
import { type ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type NativeHelpers, nativeHelpers, nativeLoadError } from '../../lib/native/index.js';
import { hasIoFlusherFlags, PF_IO_FLUSHER_MASK, statFlags } from '../../lib/native/task-flags.js';
import { match } from '../helpers/match.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const INDEX_JS = path.resolve(HERE_DIR, '../../lib/native/index.js');
const TASK_FLAGS_JS = path.resolve(HERE_DIR, '../../lib/native/task-flags.js');
const LAUNCHER = path.resolve(HERE_DIR, '../../../build/Release/remapfs-io-flusher');
const CAP_SYS_RESOURCE = 24;

function helpers(): NativeHelpers {
  const h = nativeHelpers();
  if (!h) throw new Error(`the native helper does not load: ${nativeLoadError()}`);
  return h;
}

/** Runs `body` in a child node with `n` (the helpers) and `file` (argv) in scope; returns its stdout lines. */
function childSync(body: string, file: string): string[] {
  const script = `const n = require(${JSON.stringify(INDEX_JS)}).nativeHelpers(); const file = process.argv[1]; ${body}`;
  const r = spawnSync(process.execPath, ['-e', script, file], { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

/** Try-locks from another process (its own open of the file): true when taken. */
function childTryLock(file: string, mode: 'exclusive' | 'shared'): boolean {
  const [line] = childSync(`const fd = require('fs').openSync(file, 'r'); console.log(n.flock(fd, ${JSON.stringify(mode)}, false));`, file);
  return line === 'true';
}

function blockedFlockPids(ino: number): number[] {
  // "12: -> FLOCK  ADVISORY  WRITE 4321 00:1f:5678 0 EOF": a waiter for the lock on inode 5678.
  return fs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === '->' && f[2] === 'FLOCK' && f[6]?.split(':')[2] === String(ino))
    .map((f) => Number(f[5]));
}

function hasCapSysResource(): boolean {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  if (!line) throw new Error('no CapEff in /proc/self/status');
  return (BigInt(`0x${line.split(/\s+/)[1]}`) & (1n << BigInt(CAP_SYS_RESOURCE))) !== 0n;
}

describe('native helper', () => {
  let dir: string;
  let file: string;
  const fds: number[] = [];
  const children: ChildProcess[] = [];

  beforeAll(() => {
    helpers();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-native-'));
    file = path.join(dir, 'lock');
    fs.writeFileSync(file, '');
  });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const fd of fds.splice(0)) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const open = (): number => {
    const fd = fs.openSync(file, 'r');
    fds.push(fd);
    return fd;
  };

  test('loads and exports exactly the four functions', () => {
    expect(nativeLoadError()).toBeUndefined();
    expect(Object.keys(helpers()).sort()).toEqual(['flock', 'getIoFlusher', 'setIoFlusher', 'unlock']);
  });

  test('an exclusive lock blocks a second exclusive one in another process until unlock', async () => {
    const n = helpers();
    const fd = open();
    expect(n.flock(fd, 'exclusive', false)).toBe(true);
    expect(childTryLock(file, 'exclusive')).toBe(false);
    expect(childTryLock(file, 'shared')).toBe(false);

    const script =
      `const n = require(${JSON.stringify(INDEX_JS)}).nativeHelpers();` +
      `const fd = require('fs').openSync(process.argv[1], 'r');` +
      `console.log('waiting'); const r = n.flock(fd, 'exclusive', true); console.log('taken ' + r);`;
    const child = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    const ino = fs.statSync(file).ino;
    // Its stdout may arrive after it blocks: wait for both.
    while (!blockedFlockPids(ino).includes(child.pid!) || out === '') {
      if (child.exitCode !== null) throw new Error(`the child did not wait for the lock: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(out).toBe('waiting\n');
    n.unlock(fd);
    expect(await exited).toBe(0);
    expect(out).toBe('waiting\ntaken true\n');
  });

  test('unlock releases the lock for another process', () => {
    const n = helpers();
    const fd = open();
    expect(n.flock(fd, 'exclusive', true)).toBe(true);
    expect(childTryLock(file, 'exclusive')).toBe(false);
    n.unlock(fd);
    expect(childTryLock(file, 'exclusive')).toBe(true);
  });

  test('shared locks coexist, and exclude an exclusive one', () => {
    const n = helpers();
    const fd = open();
    expect(n.flock(fd, 'shared', false)).toBe(true);
    expect(childTryLock(file, 'shared')).toBe(true);
    expect(childTryLock(file, 'exclusive')).toBe(false);
    // Two opens in one process are two open file descriptions: they conflict too.
    expect(n.flock(open(), 'exclusive', false)).toBe(false);
    expect(n.flock(open(), 'shared', false)).toBe(true);
  });

  test('errors carry the errno name; bad arguments are TypeErrors', () => {
    const n = helpers();
    const closed = fs.openSync(file, 'r');
    fs.closeSync(closed);
    expect(() => n.flock(closed, 'shared', false)).toThrow(match.error({ code: 'EBADF' }));
    expect(() => n.unlock(closed)).toThrow(match.error({ code: 'EBADF' }));
    // The add-on's TypeError comes from Node's realm, not jest's: compare by name.
    const typeError = match.error({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(() => n.flock(-1, 'shared', false)).toThrow(typeError);
    expect(() => n.flock(1.5, 'shared', false)).toThrow(typeError);
    expect(() => n.flock(open(), 'both' as 'shared', false)).toThrow(typeError);
    expect(() => n.flock(open(), 'shared', 'yes' as unknown as boolean)).toThrow(typeError);
  });

  test('setIoFlusher/getIoFlusher round trip on a thread, visible in its kernel flags', () => {
    const lines = childSync(
      `const tf = require(${JSON.stringify(TASK_FLAGS_JS)}); const fs = require('fs');` +
        `const flags = () => tf.statFlags(fs.readFileSync('/proc/thread-self/stat', 'utf8'));` +
        `const r = { before: n.getIoFlusher(), flagsBefore: flags() }; r.set = n.setIoFlusher();` +
        `r.after = n.getIoFlusher(); r.flagsAfter = flags(); console.log(JSON.stringify(r));`,
      file,
    );
    const r = JSON.parse(lines[0]!) as { before: unknown; set: unknown; after: unknown; flagsBefore: number; flagsAfter: number };
    expect(r.flagsBefore & PF_IO_FLUSHER_MASK).toBe(0);
    if (hasCapSysResource()) {
      expect(r).toMatchObject({ before: 0, set: 0, after: 1 });
      expect(hasIoFlusherFlags(r.flagsAfter)).toBe(true);
    } else {
      // Both prctls need CAP_SYS_RESOURCE (kernel/sys.c); without it nothing changes.
      expect(r).toMatchObject({ before: 'EPERM', set: 'EPERM', after: 'EPERM' });
      expect(r.flagsAfter & PF_IO_FLUSHER_MASK).toBe(0);
    }
  });

  test('remapfs-io-flusher sets it, then runs the command in its place: every thread of a new node has it', () => {
    const script =
      `const tf = require(${JSON.stringify(TASK_FLAGS_JS)}); const n = require(${JSON.stringify(INDEX_JS)}).nativeHelpers();` +
      `console.log(JSON.stringify({ pid: process.pid, get: n.getIoFlusher(), flags: tf.threadFlagsOf(process.pid).map((t) => t.flags) }));`;
    const r = spawnSync(LAUNCHER, [process.execPath, '-e', script], { encoding: 'utf8', timeout: 60000 });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { pid: number; get: unknown; flags: number[] };
    expect(out.pid).toBe(r.pid); // executed in place, not forked
    expect(out.flags.length).toBeGreaterThan(1);
    if (hasCapSysResource()) {
      expect(r.stderr).toBe('');
      expect(out.get).toBe(1);
      expect(out.flags.filter((f) => !hasIoFlusherFlags(f))).toEqual([]);
    } else {
      expect(r.stderr).toBe(`remapfs-io-flusher: PR_SET_IO_FLUSHER: EPERM; running ${process.execPath} without it\n`);
      expect(out.flags.filter((f) => (f & PF_IO_FLUSHER_MASK) !== 0)).toEqual([]);
    }
    const missing = spawnSync(LAUNCHER, [path.join(dir, 'no-such-program')], { encoding: 'utf8' });
    expect(missing.status).toBe(127);
    expect(spawnSync(LAUNCHER, [], { encoding: 'utf8' }).status).toBe(2);
  });

  test('statFlags reads field 9 even when the name holds spaces and parentheses', () => {
    expect(statFlags('42 (a b) c)) S 1 42 42 0 -1 4194560 0 0')).toBe(4194560);
    expect(() => statFlags('garbage')).toThrow();
  });
});
