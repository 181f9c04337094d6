import type { CommandModule } from 'yargs';
import { FileDevice, identify } from '../../block/file-device';
import { RemapfsError, UsageError } from '../../errors';
import { locateMetadata } from '../../meta/locate';
import { recordOf } from '../../meta/reconcile';
import { checkOffline } from '../../meta/verify';
import { formatBytes, printJson, withStore } from '../common';
import { checkDevicesFree, NAME_PATTERN } from './init';

interface Args {
  db?: string;
  spare: string;
  main: string;
  name?: string;
  json: boolean;
}

export const importCommand: CommandModule<object, Args> = {
  command: 'import',
  describe: 'Bring a pair back from the metadata on its spare (after losing the database, or on another machine)',
  builder: (y) =>
    y
      .option('spare', { type: 'string', demandOption: true, describe: 'the spare device or image holding the metadata slots' })
      .option('main', { type: 'string', demandOption: true, describe: 'the main device or image of that pair' })
      .option('name', { type: 'string', describe: 'pair name (default: the name stored in the metadata)' })
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (argv) => {
    if (argv.name !== undefined && !NAME_PATTERN.test(argv.name)) throw new UsageError(`invalid pair name "${argv.name}"`);
    const main = identify(argv.main);
    const spare = identify(argv.spare);
    if (main.key === spare.key) throw new RemapfsError('import', argv.spare, `main and spare are the same device (${main.realPath})`);
    const dev = FileDevice.open(spare.realPath, { readOnly: true, mode: 'buffered' });
    let found;
    try {
      found = locateMetadata(dev);
    } finally {
      dev.close();
    }
    if (!found) throw new RemapfsError('import', spare.realPath, 'no valid remapfs metadata slot found', 'is this the spare of a pair?');
    const h = found.newest.header;
    if (main.sizeBytes !== h.mainBytes) {
      throw new RemapfsError('import', main.realPath, `is ${formatBytes(main.sizeBytes)} (${main.sizeBytes} bytes) but pair ${h.name} was made with a main of ${h.mainBytes} bytes`, 'wrong main device?');
    }
    if (spare.sizeBytes !== h.spareBytes) {
      throw new RemapfsError('import', spare.realPath, `is ${spare.sizeBytes} bytes but the metadata says ${h.spareBytes}`);
    }
    const name = argv.name ?? h.name;
    await withStore(argv, true, (store) => {
      const pair = store.transaction(() => {
        const sameUuid = store.getPairByUuid(h.uuid);
        if (sameUuid) throw new RemapfsError('import', name, `pair ${sameUuid.name} with uuid ${h.uuid} is already in the database`);
        if (store.getPair(name)) throw new RemapfsError('import', name, 'a pair with this name already exists', 'pass --name to choose another');
        checkDevicesFree(store, name, main, spare);
        const entries = found.newest.entries ?? [];
        const p = store.insertPair({
          name,
          uuid: h.uuid,
          mainPath: main.realPath,
          sparePath: spare.realPath,
          blockSize: h.blockSize,
          mainBytes: h.mainBytes,
          spareBytes: h.spareBytes,
          createdAt: Date.now(),
          metaSeq: h.sequence,
        });
        store.replaceTable(
          p.id,
          entries.filter((e) => e.state !== 'retired').map(recordOf),
          entries.filter((e) => e.state === 'retired').map((e) => ({ spareBlock: e.spareBlock, createdAt: e.createdAt })),
          h.sequence,
        );
        // The history went with the old database; the remap times in the slots rebuild the trend.
        for (const e of entries) if (e.state !== 'retired') store.addEvent(p.id, e.createdAt, e.state === 'pending' ? 'pending' : e.reason === 'label' ? 'label' : 'remap', e.mainBlock, e.spareBlock, e.reason);
        return p;
      });
      const report = checkOffline(store, pair, { write: true, log: (line) => process.stderr.write(line + '\n') });
      const remapped = (found.newest.entries ?? []).filter((e) => e.state === 'remapped' && e.reason !== 'label').length;
      if (argv.json) return printJson({ version: 1, pair: name, uuid: h.uuid, sequence: report.sequence, remappedBlocks: remapped, sourceSlot: found.newest.index, repaired: report.repaired });
      process.stdout.write(`imported pair ${name} (uuid ${h.uuid}) from slot ${found.newest.index}, sequence ${h.sequence}: ${remapped} remapped blocks\n`);
    });
  },
};
