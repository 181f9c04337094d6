/**
 * The stacks phase: every stack of every available engine measured cell by cell. The compared stacks (a, ad,
 * b and each engine's c, d, e) run interleaved in a shuffled order for every run and cell, so that the drift
 * of a noisy machine, and whatever one run leaves behind on the host, hits every stack alike, and every ratio
 * of the targets compares runs of the same minutes. b0 (buffered writes, which leave the host's cache far
 * dirtier than the rest) runs on its own afterwards.
 */
import { type Cell, CELLS, type EngineName } from './config.js';
import { type BenchContext, Teardown } from './context.js';
import { chooseEngine, mountOptions } from './engines.js';
import { controlStacks, controlsTable } from './controls.js';
import { engineStacks, type EngineStacks, referenceStacks, type Stack } from './stacks.js';
import { seededRandom, shuffled } from './stats.js';
import { cacheTable, cpuTable, directTable, imageTable, mainTable, roundsTable } from './tables.js';

function runOne(ctx: BenchContext, st: Stack, cell: Cell): void {
  st.around?.(true);
  try {
    ctx.measurer.measure(st, cell);
  } finally {
    st.around?.(false);
  }
}

function interleave(ctx: BenchContext, stacks: readonly Stack[]): void {
  const compared = stacks.filter((st) => st.group === 'compared');
  const random = seededRandom(42);
  for (let run = 0; run < ctx.cfg.runs; run++) {
    for (const cell of CELLS) for (const st of shuffled(compared, random)) runOne(ctx, st, cell);
    ctx.log(`bench: run ${run + 1} of ${ctx.cfg.runs} of ${compared.map((st) => st.stack).join(', ')} done`);
  }
  const references = stacks.filter((st) => st.group === 'reference');
  for (let run = 0; run < ctx.cfg.referenceRuns; run++) {
    for (const cell of CELLS) for (const st of references) if (!st.writesOnly || cell.rw.includes('write')) runOne(ctx, st, cell);
  }
  ctx.log(`bench: ${references.map((st) => st.stack).join(' and ')} done`);
}

async function setUp(ctx: BenchContext, teardown: Teardown): Promise<{ engines: EngineStacks[]; stacks: Stack[]; scanNotes: Array<() => string> }> {
  const options = mountOptions(ctx.lab);
  const engines: EngineStacks[] = [];
  for (const name of ctx.cfg.engines) {
    const es = await engineStacks(ctx, teardown, chooseEngine(name, options));
    if (es) engines.push(es);
  }
  const first = engines[0];
  if (!first) throw new Error(`no engine could serve (${ctx.cfg.engines.join(', ')}): ${ctx.notes.join(' ')}`);
  const stacks = [...(await referenceStacks(ctx, teardown, first.base, first.remapped)), ...engines.flatMap((e) => e.stacks)];
  const scanNotes = engines.map((e) => () => `during e.${e.engine}: ${e.scanNote()}`);
  const fuseNative = chooseEngine('fuse-native', options);
  if (ctx.cfg.controls && fuseNative.available && engines.some((e) => e.engine === 'fuse-native')) {
    const controls = await controlStacks(ctx, teardown, fuseNative.mountArgs, options);
    stacks.push(...controls.stacks);
    scanNotes.push(() => `during ey: ${controls.scanNote()}`);
  }
  return { engines, stacks, scanNotes };
}

/** Runs the phase and returns the engines that served (the scale phase uses the first). */
export async function stacksPhase(ctx: BenchContext): Promise<EngineName[]> {
  const teardown = new Teardown();
  try {
    const { engines, stacks, scanNotes } = await setUp(ctx, teardown);
    interleave(ctx, stacks);
    const scanNote = `The scanner yields to user I/O (scanIdleMs 100); scan ${scanNotes.map((f) => f()).join('; ')}.`;
    ctx.log(`bench: ${scanNote}`);
    const served = engines.map((e) => e.engine);
    const measured = stacks.filter((st) => st.proc).map((st) => st.stack);
    ctx.lines.push(...mainTable(ctx.measurer, served, ctx.cfg.runs), ...roundsTable(ctx.measurer, served), scanNote, '', ...imageTable(ctx.measurer, served[0] as EngineName));
    if (ctx.cfg.direct) ctx.lines.push(...directTable(ctx.measurer, served));
    ctx.lines.push(...cpuTable(ctx.measurer, measured));
    if (ctx.measurer.cache.kind === 'drop' && ctx.measurer.cache.statFile) ctx.lines.push(...cacheTable(ctx.measurer, stacks.map((st) => st.stack)));
    if (ctx.cfg.controls && stacks.some((st) => st.stack === 'b2')) ctx.lines.push(...controlsTable(ctx));
    return served;
  } finally {
    await teardown.run();
  }
}
