/**
 * The layer order of lib/ (docs/architecture.md, "Layers"): every import in
 * lib/**\/*.ts goes to the same folder, a folder on the same floor or one on
 * a floor below, and no two folders import each other (directly or round a
 * longer loop). A folder missing from FLOORS fails too, so that a new folder
 * gets a place in the picture.
 */
import * as fs from 'fs';
import { builtinModules } from 'module';
import * as path from 'path';
import { fileURLToPath } from 'url';

/** This module's directory (ES modules have no __dirname). */
const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));

const ROOT = path.resolve(HERE_DIR, '../../..');
const LIB = path.join(ROOT, 'lib');

/** Bottom first. Keep in step with the picture in docs/architecture.md. */
const FLOORS: readonly (readonly string[])[] = [
  ['errors', 'types', 'format', 'native'],
  ['block', 'fsutil'],
  ['store'],
  ['remap'],
  ['meta'],
  ['discovery', 'health', 'rescue'],
  ['pair'],
  ['fs'],
  ['daemon'],
  ['sim', 'lab'],
  ['cli'],
];

interface Edge {
  file: string;
  spec: string;
  from: string;
  to: string;
}

/** The lib/ folder of a path relative to lib/ ('errors' for lib/errors.ts). */
function folderOf(relToLib: string): string {
  const first = relToLib.split(path.sep)[0] ?? relToLib;
  return first.replace(/\.(d\.)?(ts|js)$/, '');
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers in `source`: import/export ... from, import(), require(). */
export function relativeSpecifiers(source: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm;
  const out: string[] = [];
  for (let m = re.exec(source); m; m = re.exec(source)) out.push(m[1] as string);
  return out;
}

function libEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of tsFiles(LIB)) {
    const from = folderOf(path.relative(LIB, file));
    for (const spec of relativeSpecifiers(fs.readFileSync(file, 'utf8'))) {
      const target = path.relative(LIB, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) {
        edges.push({ file: path.relative(ROOT, file), spec, from, to: '(outside lib/)' });
        continue;
      }
      edges.push({ file: path.relative(ROOT, file), spec, from, to: folderOf(target) });
    }
  }
  return edges;
}

/** One line per import that runs upwards, leaves lib/ or names a folder with no floor. */
export function upwardImports(edges: readonly Edge[], floors: readonly (readonly string[])[]): string[] {
  const floorOf = new Map<string, number>();
  floors.forEach((names, i) => names.forEach((n) => floorOf.set(n, i)));
  const problems: string[] = [];
  for (const e of edges) {
    if (e.from === e.to) continue;
    const a = floorOf.get(e.from);
    const b = floorOf.get(e.to);
    if (a === undefined) problems.push(`${e.file}: folder lib/${e.from} has no floor (add it to FLOORS and docs/architecture.md)`);
    else if (b === undefined) problems.push(`${e.file}: import '${e.spec}' goes to ${e.to}, which has no floor`);
    else if (b > a) problems.push(`${e.file}: import '${e.spec}' goes up from ${e.from} (floor ${a}) to ${e.to} (floor ${b})`);
  }
  return problems;
}

/** Folder-level cycles, each as "a -> b -> a" with the import that closes it. */
export function folderCycles(edges: readonly Edge[]): string[] {
  const next = new Map<string, Map<string, Edge>>();
  for (const e of edges) {
    if (e.from === e.to) continue;
    if (!next.has(e.from)) next.set(e.from, new Map());
    const m = next.get(e.from) as Map<string, Edge>;
    if (!m.has(e.to)) m.set(e.to, e);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const [to, e] of next.get(n) ?? []) {
      if (state.get(to) === 'open') {
        const loop = [...stack.slice(stack.indexOf(to)), to].join(' -> ');
        cycles.push(`${loop} (closed by ${e.file}: import '${e.spec}')`);
      } else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...next.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

describe('layering of lib/', () => {
  const edges = libEdges();

  it('reads the imports of every lib/ folder', () => {
    const folders = new Set(edges.map((e) => e.from));
    for (const f of ['block', 'format', 'remap', 'meta', 'pair', 'daemon', 'cli']) expect(folders).toContain(f);
    expect(edges.length).toBeGreaterThan(100);
  });

  it('has no import from a higher floor', () => {
    expect(upwardImports(edges, FLOORS)).toEqual([]);
  });

  it('has no folders that import each other', () => {
    expect(folderCycles(edges)).toEqual([]);
  });

  it('gives every folder under lib/ a floor', () => {
    const known = new Set(FLOORS.flat());
    const missing = fs.readdirSync(LIB).map((n) => folderOf(n)).filter((n) => !known.has(n));
    expect(missing).toEqual([]);
  });

  it('every folder under lib/ opens with a README.md saying what it owns', () => {
    const folders = fs.readdirSync(LIB, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    const without = folders.filter((d) => !/^# lib\/[a-z]+\/\n\n\S/.test(fs.existsSync(path.join(LIB, d, 'README.md')) ? fs.readFileSync(path.join(LIB, d, 'README.md'), 'utf8') : ''));
    expect(without).toEqual([]);
  });

  it('lib/format imports nothing but node builtins and crc-32', () => {
    const bare: string[] = [];
    for (const file of tsFiles(path.join(LIB, 'format'))) {
      const src = fs.readFileSync(file, 'utf8');
      for (const m of src.matchAll(/\bfrom\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1] as string;
        if (spec.startsWith('.')) {
          if (!path.resolve(path.dirname(file), spec).startsWith(path.join(LIB, 'format') + path.sep)) bare.push(`${path.relative(ROOT, file)}: ${spec}`);
        } else if (spec !== 'crc-32' && !builtinModules.includes(spec.replace(/^node:/, ''))) bare.push(`${path.relative(ROOT, file)}: ${spec}`);
      }
    }
    expect(bare).toEqual([]);
  });

  it('the checks catch an upward import and a cycle (so they can fail)', () => {
    const e = (from: string, to: string): Edge => ({ file: `lib/${from}/x.ts`, spec: `../${to}/y`, from, to });
    expect(upwardImports([e('block', 'remap')], FLOORS)).toEqual([
      "lib/block/x.ts: import '../remap/y' goes up from block (floor 1) to remap (floor 3)",
    ]);
    expect(upwardImports([e('newdir', 'block')], FLOORS)[0]).toMatch(/lib\/newdir has no floor/);
    expect(folderCycles([e('health', 'rescue'), e('rescue', 'health')])).toEqual([
      "health -> rescue -> health (closed by lib/rescue/x.ts: import '../health/y')",
    ]);
    expect(relativeSpecifiers("import a from './a';\nexport { b } from '../b';\nimport type { C } from '../c';\nconst d = require('./d');\nimport './e';")).toEqual(['./a', '../b', '../c', './d', './e']);
  });
});
