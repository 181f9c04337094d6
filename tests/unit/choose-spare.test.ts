/** Which spare discovery uses when several claim one pair (issue 13, item 3): the pure decision. */
import { chooseSpare, type SpareFound } from '../../lib/discovery/discover.js';
import { match } from '../helpers/match.js';

function spare(p: string, sequence: number, tablePrint: string, hardwareId: string | null = null): SpareFound {
  return { path: p, uuid: 'u', name: 'n', sequence, validSlots: 5, blockSize: 4096, mainBytes: 1 << 20, tablePrint, tableChecked: true, hardwareId };
}

describe('chooseSpare', () => {
  const real = spare('/dev/real', 10, 'A', 'serial:R');
  const crafted = spare('/srv/crafted.img', 99, 'B');

  it('keeps the known spare when it is present, whatever sequence another claims', () => {
    const c = chooseSpare([crafted, real], { path: '/dev/real', hardwareId: 'serial:R' }, (s) => s === real, true);
    expect(c.spare).toBe(real);
    expect(c.conflict).toBeNull();
    expect(c.losers).toEqual([match.object({ path: '/srv/crafted.img', why: match.string(/--accept \/srv\/crafted.img/) })]);
  });

  it('uses another spare when told to with --accept', () => {
    const c = chooseSpare([crafted, real], { path: '/dev/real', hardwareId: 'serial:R' }, (s) => s === real, true, ['/srv/crafted.img']);
    expect(c.spare).toBe(crafted);
  });

  it('is a conflict when the known spare is present but not among the valid claimants', () => {
    const c = chooseSpare([crafted], { path: '/dev/real', hardwareId: null }, () => false, true);
    expect(c.spare).toBeNull();
    expect(c.conflict).toMatch(/present but holds no valid metadata/);
  });

  it('is a conflict that says so when the known spare is present but was not scanned (not that it holds nothing)', () => {
    const c = chooseSpare([crafted], { path: '/dev/real', hardwareId: null }, () => false, true, undefined, () => false);
    expect(c.spare).toBeNull();
    expect(c.conflict).toMatch(/^the pair's spare \/dev\/real is present but was not scanned, and \/srv\/crafted.img claim it: scan it too/);
  });

  it('with a recorded file identity, takes the same file at a new path and refuses a copy (it lacks later writes)', () => {
    const moved = spare('/srv/moved.img', 10, 'A');
    const copy = spare('/srv/copy.img', 10, 'A');
    const known = { path: '/srv/gone.img', hardwareId: null, sameFile: (s: SpareFound) => s === moved };
    expect(chooseSpare([copy, moved], known, () => false, false).spare).toBe(moved);
    const c = chooseSpare([copy], known, () => false, false);
    expect(c.spare).toBeNull();
    expect(c.conflict).toMatch(/^the pair's spare \/srv\/gone.img is gone, and \/srv\/copy.img hold its table but is another file \(a copy lacks what was written since it was taken\): if one is the spare itself .*pass --accept \/srv\/copy.img/);
    expect(chooseSpare([copy], known, () => false, false, ['/srv/copy.img']).spare).toBe(copy);
    // Without a recorded identity (a database from before), identical copies are taken as before.
    expect(chooseSpare([copy], { path: '/srv/gone.img', hardwareId: null }, () => false, false).spare).toBe(copy);
  });

  it('follows a moved spare by its hardware id, and refuses one with another id', () => {
    const moved = spare('/dev/sdz', 10, 'A', 'serial:R');
    expect(chooseSpare([crafted, moved], { path: '/dev/real', hardwareId: 'serial:R' }, () => false, false).spare).toBe(moved);
    const other = spare('/dev/sdy', 11, 'A', 'serial:X');
    const c = chooseSpare([other], { path: '/dev/real', hardwareId: 'serial:R' }, () => false, false);
    expect(c.spare).toBeNull();
    expect(c.conflict).toMatch(/serial:X/);
  });

  it('without hardware ids, takes identical copies and refuses different tables', () => {
    const a = spare('/a.img', 5, 'T');
    const b = spare('/b.img', 5, 'T');
    expect(chooseSpare([a, b], null, () => false, false).spare).toBe(a);
    const newer = spare('/c.img', 6, 'U');
    const c = chooseSpare([a, newer], null, () => false, false);
    expect(c.spare).toBeNull();
    expect(c.conflict).toMatch(/different tables/);
    expect(chooseSpare([a, newer], null, () => false, false, ['/c.img']).spare).toBe(newer);
  });
});
