/**
 * The stacks phase's tables, from the runs the Measurer collected. Pure: formats numbers only. Values are a
 * stack's median; ratios are the median of the per-round ratios (Samples.ratio).
 */
import { CELLS, type Cell, type EngineName } from './config.js';
import type { Measurer } from './measure.js';
import { stackName } from './stacks.js';
import { fixed, rel, spread } from './stats.js';

const unit = (cell: Cell): string => (cell.metric === 'bw' ? 'MiB/s' : 'IOPS');

/** Per cell and engine: a, b, b0, c, d, e, and c/a for every cell, d/c, e/c, c/b. */
export function mainTable(m: Measurer, engines: readonly EngineName[], runs: number): string[] {
  const v = m.values;
  const lines = [
    `| cell | unit | engine | a loop | b passthrough | b0 buffered | c remapfs | d 1% remapped | e scanning | c/a | d/c | e/c | c/b | a spread | c spread |`,
    `|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const cell of CELLS) {
    for (const e of engines) {
      const [c, d, ev] = [stackName('c', e), stackName('d', e), stackName('e', e)];
      const values = ['a', 'b', 'b0', c, d, ev].map((s) => fixed(v.median(s, cell.name))).join(' | ');
      const r = (x: string, y: string) => rel(v.ratio(x, y, cell.name));
      lines.push(`| ${cell.name} | ${unit(cell)} | ${e} | ${values} | ${r(c, 'a')} | ${r(d, c)} | ${r(ev, c)} | ${r(c, 'b')} | ${spread(v.all('a', cell.name))} | ${spread(v.all(c, cell.name))} |`);
    }
  }
  lines.push(
    '',
    `Values: the median of a stack's ${runs} runs (b0: fewer). Ratios: the median of the ${runs} per-round ratios (in each round every ` +
      'stack but b0 ran once, in a shuffled order, within a minute or two of each other), not the ratio of the medians. ' +
      "Spread: (max - min) / median of a stack's runs of a cell, the noise of the host.",
    '',
  );
  return lines;
}

/** The target ratios' per-round range: how far one round's ratio strays from the median the targets use. */
export function roundsTable(m: Measurer, engines: readonly EngineName[]): string[] {
  const v = m.values;
  const lines = [`| per-round ratios, min-max | engine | c/a | d/c | e/c |`, `|---|---|---|---|---|`];
  for (const cell of CELLS) {
    for (const e of engines) {
      const [c, d, ev] = [stackName('c', e), stackName('d', e), stackName('e', e)];
      lines.push(`| ${cell.name} | ${e} | ${v.ratioRange(c, 'a', cell.name)} | ${v.ratioRange(d, c, cell.name)} | ${v.ratioRange(ev, c, cell.name)} |`);
    }
  }
  lines.push('');
  return lines;
}

/**
 * d/c's control: c and d are pairs on two image files, and two files differ on a disk. ad is the kernel loop
 * device on d's main image, run like a (on c's): ad/a is the part of d/c that is the files, not the remaps.
 */
export function imageTable(m: Measurer, engine: EngineName): string[] {
  const v = m.values;
  const lines = [
    `| cell | unit | a (c's image) | ad (d's image) | ad/a | d/c (${engine}) | d/c ÷ ad/a |`,
    `|---|---|---:|---:|---:|---:|---:|`,
  ];
  for (const cell of CELLS) {
    const [c, d] = [stackName('c', engine), stackName('d', engine)];
    const k = cell.name;
    lines.push(`| ${k} | ${unit(cell)} | ${fixed(v.median('a', k))} | ${fixed(v.median('ad', k))} | ${rel(v.ratio('ad', 'a', k))} | ${rel(v.ratio(d, c, k))} | ${rel(v.ratioOver(d, c, 'ad', 'a', k))} |`);
  }
  lines.push('', "The kernel loop device on each of the two images: ad/a is how much d's image file alone differs from c's.", '');
  return lines;
}

/** cD (`--open-mode direct`) against c and a. */
export function directTable(m: Measurer, engines: readonly EngineName[]): string[] {
  const v = m.values;
  const lines = [`| cell | unit | engine | c (open mode auto) | cD (open mode direct) | cD/a | cD/c |`, `|---|---|---|---:|---:|---:|---:|`];
  for (const cell of CELLS) {
    for (const e of engines) {
      const [c, cD] = [stackName('c', e), stackName('cD', e)];
      const k = cell.name;
      lines.push(`| ${k} | ${unit(cell)} | ${e} | ${fixed(v.median(c, k))} | ${fixed(v.median(cD, k))} | ${rel(v.ratio(cD, 'a', k))} | ${rel(v.ratio(cD, c, k))} |`);
    }
  }
  lines.push('');
  return lines;
}

/** Daemon CPU seconds (user + system, all threads) per GiB moved, per stack; native/fuse-native for c. */
export function cpuTable(m: Measurer, stacks: readonly string[]): string[] {
  const both = stacks.includes(stackName('c', 'native')) && stacks.includes(stackName('c', 'fuse-native'));
  const lines = [
    `| daemon CPU s per GiB moved (median) | ${stacks.join(' | ')}${both ? ' | c native / c fuse-native' : ''} |`,
    `|---|${stacks.map(() => '---:').join('|')}${both ? '|---:' : ''}|`,
  ];
  for (const cell of CELLS) {
    const xs = stacks.map((s) => m.cpuPerGiB.median(s, cell.name));
    const last = both ? ` | ${rel(m.cpuPerGiB.ratio(stackName('c', 'native'), stackName('c', 'fuse-native'), cell.name))}` : '';
    lines.push(`| ${cell.name} | ${xs.map((x) => fixed(x, 2)).join(' | ')}${last} |`);
  }
  lines.push('');
  return lines;
}

/** For the read cells: bytes read from the disk per byte fio read (0: the page cache served it all). */
export function cacheTable(m: Measurer, stacks: readonly string[]): string[] {
  const reads = CELLS.filter((c) => c.rw.includes('read'));
  const lines = [`| disk bytes read per byte read (median) | ${stacks.join(' | ')} |`, `|---|${stacks.map(() => '---:').join('|')}|`];
  for (const cell of reads) lines.push(`| ${cell.name} | ${stacks.map((s) => fixed(m.diskPerRead.median(s, cell.name), 2)).join(' | ')} |`);
  lines.push(
    '',
    'The page cache was dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every run. 1.00: every byte came from the disk; ' +
      'below 1: the page cache served the rest (blocks read twice within a run); above 1: read-ahead read more than fio asked for. ' +
      "From the disk's read counters over the whole fio run (its ramp included, scaled by time), so other I/O on the disk counts too.",
    '',
  );
  return lines;
}
