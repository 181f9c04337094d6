/**
 * TypedHash (lib/remap/typed-hash.ts): the remap index's and the metadata's number -> number map. Checked
 * against a Map under random sets, deletes and growth, with keys and values on both sides of 2^32 (where
 * its Uint32Array slots are widened to Float64Array), and for its memory: 8 bytes per slot while narrow.
 */
import { MAX_KEY, TypedHash } from '../../lib/remap/typed-hash.js';

/** A deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sameAs(h: TypedHash, model: Map<number, number>): void {
  expect(h.size).toBe(model.size);
  for (const [k, v] of model) expect(h.get(k)).toBe(v);
  const seen = new Map<number, number>();
  h.forEach((v, k) => seen.set(k, v));
  expect(seen).toEqual(model);
}

describe('TypedHash', () => {
  it.each([
    ['small keys and values', 1000, 1000],
    ['keys above 2^32', 2 ** 40, 1000],
    ['values above 2^32', 1000, 2 ** 40],
    ['both near 2^53', MAX_KEY, Number.MAX_SAFE_INTEGER],
  ])('matches a Map under random sets and deletes: %s', (_name, keyRange, valueRange) => {
    const next = random(keyRange % 1000);
    const h = new TypedHash();
    const model = new Map<number, number>();
    const keys: number[] = [];
    for (let op = 0; op < 20000; op++) {
      const r = next();
      if (r < 0.25 && keys.length) {
        const k = keys[Math.floor(next() * keys.length)] as number;
        expect(h.delete(k)).toBe(model.delete(k));
      } else {
        const k = r < 0.5 && keys.length ? (keys[Math.floor(next() * keys.length)] as number) : Math.floor(next() * keyRange);
        const v = Math.floor(next() * valueRange);
        h.set(k, v);
        model.set(k, v);
        keys.push(k);
      }
    }
    sameAs(h, model);
    expect(h.get(keyRange === MAX_KEY ? 0 : keyRange + 1)).toBe(model.get(keyRange + 1) ?? -1);
  });

  it('widens keys and values in place: entries stored before stay where they are', () => {
    const h = new TypedHash(1000);
    const model = new Map<number, number>();
    for (let k = 0; k < 1000; k++) {
      h.set(k * 7, k);
      model.set(k * 7, k);
    }
    const narrowBytes = h.byteLength;
    expect(narrowBytes).toBe(2048 * 8);
    h.set(2 ** 32 - 3, 0xffffffff); // the last narrow key and value
    model.set(2 ** 32 - 3, 0xffffffff);
    expect(h.byteLength).toBe(narrowBytes);
    h.set(2 ** 32 - 2, 2 ** 32); // the first wide key, and a wide value
    model.set(2 ** 32 - 2, 2 ** 32);
    expect(h.byteLength).toBe(2048 * 16);
    h.set(3, -7); // a negative value stays exact too
    model.set(3, -7);
    sameAs(h, model);
  });

  it('sizes its table for the expected entries once: a million take 16 MB', () => {
    const h = new TypedHash(1_000_000);
    for (let k = 0; k < 1_000_000; k++) h.set(2 * k + 262144, k);
    expect(h.size).toBe(1_000_000);
    expect(h.byteLength).toBe(2 ** 21 * 8);
    expect(h.get(262144 + 2 * 999_999)).toBe(999_999);
    expect(h.get(262145)).toBe(-1);
  });

  it('answers -1 for keys it cannot hold and refuses to store them', () => {
    const h = new TypedHash();
    h.set(0, 9);
    h.delete(0);
    for (const k of [-1, -2, 0.5, MAX_KEY + 1, NaN]) {
      expect(h.get(k)).toBe(-1);
      expect(h.has(k)).toBe(false);
      expect(h.delete(k)).toBe(false);
      expect(() => h.set(k, 1)).toThrow(RangeError);
    }
    expect(h.size).toBe(0);
  });
});
