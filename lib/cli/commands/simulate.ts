import * as path from 'path';
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { parseSectorList } from '../../sim/sectors.js';
import { SIMULATED_FILE, Simulator } from '../../sim/simulator.js';
import { countOption } from '../options.js';
import { runInForeground } from '../foreground.js';
import { engineOf, engineOption } from '../engine.js';

interface Args {
  image: string;
  mountpoint: string;
  bad: string[];
  slow: string[];
  'delay-ms': number;
  engine?: string;
}

export const simulateCommand: CommandModule<object, Args> = {
  command: 'simulate <image> <mountpoint>',
  describe: `Serve <mountpoint>/${SIMULATED_FILE}: the image with bad sectors that fail with EIO and slow sectors that answer late`,
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'image file or block device to wrap' })
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an empty directory' })
      .option('bad', { type: 'string', array: true, default: [], describe: '512-byte sectors or ranges that fail, e.g. 7,100-163' })
      .option('slow', { type: 'string', array: true, default: [], describe: 'sectors or ranges that answer after --delay-ms' })
      .option('delay-ms', countOption('delay-ms', 'delay of slow sectors in milliseconds', 0))
      .option('engine', engineOption) as never,
  handler: async (argv) => {
    const delayMs = argv['delay-ms'];
    let bad: number[];
    let slow: number[];
    try {
      bad = parseSectorList(argv.bad);
      slow = parseSectorList(argv.slow);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    if (slow.length > 0 && delayMs === 0) throw new UsageError('--slow needs --delay-ms');
    const engine = engineOf(argv.engine);
    const sim = new Simulator(argv.image, argv.mountpoint, engine ? { engine } : {});
    const outside = [...bad, ...slow].find((s) => s >= sim.sectorCount);
    if (outside !== undefined) {
      sim.fault.close();
      throw new UsageError(`sector ${outside} is beyond the end of ${argv.image} (${sim.sectorCount} sectors)`);
    }
    for (const s of bad) sim.fault.badSectors.add(s);
    for (const s of slow) sim.fault.slowSectors.add(s);
    sim.fault.slowDelayMs = delayMs;
    await sim.start();
    const file = path.join(sim.mountpoint, SIMULATED_FILE);
    await runInForeground(sim, `remapfs: simulating ${file} over ${path.resolve(argv.image)}: ${bad.length} bad, ${slow.length} slow sectors (pid ${process.pid})`);
  },
};
