/**
 * The ddrescue mapfile and badblocks parsers (lib/rescue/mapfile.ts) and the
 * area map a copy keeps: what is accepted (comments, hex and decimal, CRLF,
 * a status line without its pass), what is refused and why, and that what
 * formatMapfile writes parses back to the same map.
 */
import { type Area, AreaMap, areasFromSectors, formatMapfile, parseBadblocks, parseMapfile, sectorsOf } from '../../lib/rescue/mapfile.js';

const DDRESCUE_OUTPUT = `# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdb disk.img disk.map
# Start time:   2026-01-01 10:00:00
# current_pos  current_status  current_pass
0x00120000     ?               2
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00000200  -
0x00100200  0x00001E00  /
0x00102000  0x00001000  *
0x00103000  0x000FD000  ?
`;

describe('parseMapfile', () => {
  it('reads a mapfile as GNU ddrescue writes it', () => {
    const m = parseMapfile(DDRESCUE_OUTPUT);
    expect(m).toEqual({
      currentPos: 0x120000,
      currentStatus: '?',
      currentPass: 2,
      areas: [
        { pos: 0, size: 0x100000, status: '+' },
        { pos: 0x100000, size: 0x200, status: '-' },
        { pos: 0x100200, size: 0x1e00, status: '/' },
        { pos: 0x102000, size: 0x1000, status: '*' },
        { pos: 0x103000, size: 0xfd000, status: '?' },
      ],
    });
  });

  it('reads decimal numbers, CRLF line ends, blank lines, and a status line without its pass (pass 1)', () => {
    const m = parseMapfile('# comment\r\n\r\n4096 +\r\n0 4096 +\r\n  4096   512   -  \r\n');
    expect(m).toEqual({ currentPos: 4096, currentStatus: '+', currentPass: 1, areas: [{ pos: 0, size: 4096, status: '+' }, { pos: 4096, size: 512, status: '-' }] });
  });

  it('accepts a status line with no areas', () => {
    expect(parseMapfile('0x0 ? 1\n').areas).toEqual([]);
  });

  it.each([
    ['an empty file', '', /empty mapfile/],
    ['only comments', '# a\n# b\n', /empty mapfile/],
    ['a status line of one field', '0x0\n', /bad status line "0x0"/],
    ['a bad current position', 'zz ? 1\n', /bad current position "zz"/],
    ['a bad pass', '0 ? x\n', /bad pass "x"/],
    ['an area line of two fields', '0 ? 1\n0 512\n', /bad area line "0 512"/],
    ['an unknown area status', '0 ? 1\n0 512 X\n', /bad area line "0 512 X"/],
    ['a negative size', '0 ? 1\n0 -512 +\n', /bad size "-512"/],
    ['bad hex', '0 ? 1\n0x0 0xZZ +\n', /bad size "0xZZ"/],
    ['a size of 2^53', `0 ? 1\n0 ${2 ** 53} +\n`, /bad size/],
    ['areas that do not start at 0', '0 ? 1\n512 512 +\n', /not contiguous at 512 512 \+/],
    ['a gap between areas', '0 ? 1\n0 512 +\n1024 512 -\n', /not contiguous at 1024 512 -/],
    ['overlapping areas', '0 ? 1\n0 1024 +\n512 512 -\n', /not contiguous at 512 512 -/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseMapfile(text)).toThrow(message);
  });
});

describe('formatMapfile', () => {
  it('writes what parseMapfile reads back, in hex, with the comment first', () => {
    const m = parseMapfile(DDRESCUE_OUTPUT);
    const text = formatMapfile(m, 'remapfs evacuate');
    expect(text.split('\n')[0]).toBe('# Mapfile. Created by remapfs evacuate');
    expect(text).toMatch(/^0x00100000 {2}0x00000200 {2}-$/m);
    expect(text.endsWith('\n')).toBe(true);
    expect(parseMapfile(text)).toEqual(m);
  });

  it('keeps sizes past 4 GiB exact', () => {
    const big = 5 * 2 ** 32 + 4096;
    const m = { currentPos: big, currentStatus: '+', currentPass: 3, areas: [{ pos: 0, size: big, status: '+' as const }, { pos: big, size: 512, status: '-' as const }] };
    expect(parseMapfile(formatMapfile(m, 't'))).toEqual(m);
  });
});

describe('AreaMap', () => {
  it('starts as one non-tried area, splits on set and merges equal neighbours', () => {
    const map = new AreaMap(10000);
    expect(map.areas).toEqual([{ pos: 0, size: 10000, status: '?' }]);
    map.set(1000, 500, '-');
    map.set(3000, 1000, '+');
    expect(map.areas).toEqual([
      { pos: 0, size: 1000, status: '?' },
      { pos: 1000, size: 500, status: '-' },
      { pos: 1500, size: 1500, status: '?' },
      { pos: 3000, size: 1000, status: '+' },
      { pos: 4000, size: 6000, status: '?' },
    ]);
    map.set(0, 3000, '+');
    expect(map.areas).toEqual([{ pos: 0, size: 4000, status: '+' }, { pos: 4000, size: 6000, status: '?' }]);
    map.set(5000, 0, '-');
    expect(map.areas).toHaveLength(2);
    expect(map.bytes('+')).toBe(4000);
    expect(map.bytes('?', '-')).toBe(6000);
    expect(map.withStatus('?')).toEqual([{ pos: 4000, size: 6000, status: '?' }]);
  });

  it('refuses areas that do not cover the device', () => {
    expect(() => new AreaMap(4096, [{ pos: 0, size: 2048, status: '+' }])).toThrow(/covers 2048 bytes, the device has 4096/);
  });

  it('does not share its areas with the caller', () => {
    const given: Area[] = [{ pos: 0, size: 4096, status: '+' }];
    const map = new AreaMap(4096, given);
    map.set(0, 512, '-');
    expect(given).toEqual([{ pos: 0, size: 4096, status: '+' }]);
    map.withStatus('-')[0]!.size = 1;
    expect(map.bytes('-')).toBe(512);
  });
});

describe('sectors and areas', () => {
  it('areasFromSectors groups runs of sectors; sectorsOf gives them back', () => {
    const sectors = [9, 3, 4, 5, 5, 20];
    const areas = areasFromSectors(sectors, 32 * 512);
    expect(areas).toEqual([
      { pos: 0, size: 3 * 512, status: '+' },
      { pos: 3 * 512, size: 3 * 512, status: '-' },
      { pos: 6 * 512, size: 3 * 512, status: '+' },
      { pos: 9 * 512, size: 512, status: '-' },
      { pos: 10 * 512, size: 10 * 512, status: '+' },
      { pos: 20 * 512, size: 512, status: '-' },
      { pos: 21 * 512, size: 11 * 512, status: '+' },
    ]);
    expect(sectorsOf(areas, ['-'])).toEqual([3, 4, 5, 9, 20]);
  });

  it('sectorsOf counts a partly covered sector', () => {
    expect(sectorsOf([{ pos: 0, size: 700, status: '+' }, { pos: 700, size: 400, status: '-' }, { pos: 1100, size: 0, status: '-' }], ['-'])).toEqual([1, 2]);
  });
});

describe('parseBadblocks', () => {
  it('turns block numbers in the given block size into 512-byte sectors', () => {
    expect(parseBadblocks('# badblocks -b 1024\n7\n\n  2 \n', 1024)).toEqual([14, 15, 4, 5]);
    expect(parseBadblocks('1\n', 4096)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('refuses a line that is not a block number, and a block size that is not a multiple of 512', () => {
    expect(() => parseBadblocks('12\n0x10\n', 1024)).toThrow(/"0x10" is not a block number/);
    expect(() => parseBadblocks('-1\n', 1024)).toThrow(/"-1" is not a block number/);
    expect(() => parseBadblocks('1\n', 1000)).toThrow(/multiple of 512, got 1000/);
    expect(() => parseBadblocks('1\n', 0)).toThrow(/multiple of 512, got 0/);
  });
});
