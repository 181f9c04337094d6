/**
 * The shipped systemd units pass `systemd-analyze verify` (offline: systemd
 * need not be running), with ExecStart pointed at this checkout's remapfs,
 * and the man page generated from docs/cli.md is clean roff that covers
 * every command.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { markdownToMan } from '../../scripts/man.js';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const ROOT = path.resolve(HERE_DIR, '../../..');
const UNITS = path.join(ROOT, 'contrib/systemd');

function need(cmd: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) throw new Error(`${cmd} is missing (apt-get install ${pkg}; scripts/setup.sh installs it)`);
}

describe('contrib/systemd', () => {
  it('ships the daemon unit and the health timer, and systemd-analyze verify finds nothing', () => {
    need('systemd-analyze', 'systemd');
    const names = fs.readdirSync(UNITS).sort();
    expect(names).toEqual(['remapfs-health.service', 'remapfs-health.timer', 'remapfs.service']);
    const daemon = fs.readFileSync(path.join(UNITS, 'remapfs.service'), 'utf8');
    expect(daemon).toMatch(/^Type=notify$/m);
    expect(daemon).toMatch(/^NotifyAccess=all$/m);
    expect(daemon).toMatch(/^ExecStart=\/usr\/local\/lib\/node_modules\/remapfs\/build\/Release\/remapfs-io-flusher \/usr\/local\/bin\/remapfs mount \/srv\/remapfs --attach$/m);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-units-'));
    try {
      for (const n of names) {
        const text = fs.readFileSync(path.join(UNITS, n), 'utf8');
        fs.writeFileSync(path.join(dir, n), text.replace(/\/usr\/local\/lib\/node_modules\/remapfs\//g, `${ROOT}/`).replace(/\/usr\/local\/bin\/remapfs/g, path.join(ROOT, 'bin/remapfs')));
      }
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((n) => path.join(dir, n))], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the man page', () => {
  const cliMd = fs.readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8');
  const page = markdownToMan(cliMd, '9.9.9');

  it('has a title, a name and a synopsis, and a section for every command in docs/cli.md', () => {
    expect(page.split('\n')[0]).toBe('.TH REMAPFS 1 "" "remapfs 9.9.9" "User Commands"');
    expect(page).toMatch(/^\.SH NAME\nremapfs \\- /m);
    expect(page).toMatch(/^\.SH SYNOPSIS\n\.nf\nremapfs \[\\-\\-db <file>\] <command> \[options\]\n\.fi$/m);
    const commands = [...cliMd.matchAll(/^### `remapfs ([a-z-]+)/gm)].map((m) => m[1] as string);
    expect(commands).toEqual(expect.arrayContaining(['init', 'mount', 'attach', 'detach', 'completion']));
    for (const c of commands) expect(page).toContain(`.SS \\fBremapfs ${c.replace(/-/g, '\\-')}`);
    // No Markdown left over, and no text line that roff would take for a request.
    expect(page).not.toMatch(/```|\]\(|\*\*/);
    for (const line of page.split('\n')) if (/^[.']/.test(line)) expect(line).toMatch(/^\.(TH|SH|SS|PP|IP|RS|RE|nf|fi)\b/);
  });

  it('is clean roff: groff -man -ww warns about nothing', () => {
    need('groff', 'groff-base');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'remapfs-man-')), 'remapfs.1');
    try {
      fs.writeFileSync(file, page);
      const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const text = execFileSync('groff', ['-man', '-Tutf8', '-P', '-cbou', file], { encoding: 'utf8' });
      expect(text).toContain('remapfs attach <name>');
      expect(text).toContain('/dev/remapfs/<name>');
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});
