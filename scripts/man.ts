/**
 * Generates the man page remapfs.1 from docs/cli.md (run by `npm pack`, see
 * package.json "prepack"): `node dist/scripts/man.js [<out>]`, default
 * dist/man/remapfs.1.
 *
 * It knows the Markdown that docs/cli.md uses, no more: `#` to `###`
 * headings, paragraphs, `-` lists (with indented continuation lines), fenced
 * code, pipe tables, `code`, **bold**, *emphasis* and [links](…). The page
 * depends only on the file and the package version, so it is reproducible.
 */
import * as fs from 'fs';
import { pathToFileURL } from 'url';
import * as path from 'path';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const ROOT = path.resolve(HERE_DIR, '../..');

/** Escapes text for roff: backslashes, hyphens, and characters beyond ASCII (as \[uXXXX]). */
function escapeText(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/\P{ASCII}/gu, (c) => `\\[u${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}]`);
}

/** Inline Markdown to roff fonts; links keep their text. */
export function inline(md: string): string {
  let out = '';
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\([^)]*\)/g;
  let last = 0;
  for (let m = re.exec(md); m; m = re.exec(md)) {
    out += escapeText(md.slice(last, m.index));
    if (m[1] !== undefined || m[2] !== undefined) out += `\\fB${escapeText((m[1] ?? m[2]) as string)}\\fR`;
    else if (m[3] !== undefined) out += `\\fI${escapeText(m[3])}\\fR`;
    else out += inline(m[4] as string);
    last = m.index + m[0].length;
  }
  return out + escapeText(md.slice(last));
}

/** A roff text line that cannot be taken for a request. */
function textLine(s: string): string {
  return /^[.']/.test(s) ? `\\&${s}` : s;
}

function tableRows(lines: string[]): string[][] {
  return lines
    .filter((l) => !/^\|[\s:|-]+\|$/.test(l)) // the |---|---| separator
    .map((l) =>
      l
        .replace(/^\||\|$/g, '')
        .split('|')
        .map((c) => c.trim()),
    );
}

export function markdownToMan(md: string, version: string): string {
  const lines = md.split('\n');
  const out: string[] = [`.TH REMAPFS 1 "" "remapfs ${version}" "User Commands"`];
  let i = 0;
  let sawSynopsis = false;
  const para: string[] = [];
  const flush = () => {
    if (para.length) out.push('.PP', ...para.map((l) => textLine(inline(l))));
    para.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i] as string;
    if (line.startsWith('```')) {
      flush();
      const code: string[] = [];
      for (i++; i < lines.length && !(lines[i] as string).startsWith('```'); i++) code.push(lines[i] as string);
      i++;
      if (!sawSynopsis) {
        // The first block of docs/cli.md is the synopsis.
        out.push('.SH SYNOPSIS', '.nf', ...code.map((l) => textLine(escapeText(l))), '.fi', '.SH DESCRIPTION');
        sawSynopsis = true;
      } else {
        out.push('.PP', '.RS 4', '.nf', ...code.map((l) => textLine(escapeText(l))), '.fi', '.RE');
      }
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^# (.*)$/.exec(line))) {
      flush();
      out.push('.SH NAME', `remapfs \\- ${escapeText('serve a failing disk with its bad blocks remapped to a spare device')}`);
      i++;
      continue;
    }
    if ((m = /^## (.*)$/.exec(line))) {
      flush();
      out.push(`.SH ${inline((m[1] as string).toUpperCase())}`);
      i++;
      continue;
    }
    if ((m = /^### (.*)$/.exec(line))) {
      flush();
      out.push(`.SS ${inline(m[1] as string)}`);
      i++;
      continue;
    }
    if (line.startsWith('|')) {
      flush();
      const block: string[] = [];
      for (; i < lines.length && (lines[i] as string).startsWith('|'); i++) block.push(lines[i] as string);
      // Cells as written (without inline markup), aligned in a preformatted block.
      const rows = tableRows(block).map((r) => r.map((c) => c.replace(/`([^`]*)`/g, '$1').replace(/\*\*([^*]*)\*\*/g, '$1')));
      const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
      const render = (r: string[]) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ').trimEnd();
      out.push('.PP', '.RS 4', '.nf', ...rows.map((r) => textLine(escapeText(render(r)))), '.fi', '.RE');
      continue;
    }
    if ((m = /^- (.*)$/.exec(line))) {
      flush();
      const item = [m[1] as string];
      for (i++; i < lines.length && /^ {2,}\S/.test(lines[i] as string); i++) item.push((lines[i] as string).trim());
      out.push('.IP \\(bu 2', ...item.map((l) => textLine(inline(l))));
      continue;
    }
    if (line.trim() === '') {
      flush();
      i++;
      continue;
    }
    para.push(line.trim());
    i++;
  }
  flush();
  out.push('.SH SEE ALSO', 'The documentation in the package: \\fBdocs/architecture.md\\fR, \\fBdocs/format.md\\fR, \\fBdocs/health.md\\fR, \\fBdocs/boot.md\\fR.');
  return out.join('\n') + '\n';
}

function main(): void {
  const outPath = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist/man/remapfs.1'));
  const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const page = markdownToMan(fs.readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8'), version);
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, page);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
