/**
 * TypedHash: a number -> number hash map in two typed arrays (open
 * addressing, linear probing), for keys that are integers in [0, MAX_KEY]
 * and values that are numbers. No per-entry objects, which keeps the garbage
 * collector out of the I/O path. get() returns -1 for a missing key.
 *
 * Layout: keys[i] holds key + 2, 0 = empty, 1 = deleted (so new arrays need
 * no fill). Both arrays start as Uint32Array (8 bytes per slot: a million
 * entries in 2^21 slots take 16 MB) and each is widened to a Float64Array,
 * in place (slots do not move: the hash does not depend on the array), the
 * first time a key above NARROW_MAX_KEY or a value that is not an integer in
 * [0, 2^32) arrives. Wide arrays hold every key below 2^53 - 2 exactly.
 */
const EMPTY = 0;
const DELETED = 1;
const KEY_BIAS = 2;
/** Largest key a Uint32Array slot can hold (stored as key + 2). */
const NARROW_MAX_KEY = 0xffffffff - KEY_BIAS;
export const MAX_KEY = Number.MAX_SAFE_INTEGER - KEY_BIAS;

type Slots = Uint32Array | Float64Array;

export class TypedHash {
  private keys: Slots;
  private vals: Slots;
  private count = 0;
  private used = 0; // live + deleted slots

  constructor(capacity = 16) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Uint32Array(cap);
    this.vals = new Uint32Array(cap);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the two arrays. */
  get byteLength(): number {
    return this.keys.byteLength + this.vals.byteLength;
  }

  private slot(key: number): number {
    const keys = this.keys;
    const mask = keys.length - 1;
    const stored = key + KEY_BIAS;
    let h = Math.imul((key % 4294967296) ^ Math.imul(Math.floor(key / 4294967296), 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    let i = h & mask;
    let firstDeleted = -1;
    for (;;) {
      const k = keys[i] as number;
      if (k === stored) return i;
      if (k === EMPTY) return firstDeleted >= 0 ? firstDeleted : i;
      if (k === DELETED && firstDeleted < 0) firstDeleted = i;
      i = (i + 1) & mask;
    }
  }

  get(key: number): number {
    if (!(key >= 0 && key <= MAX_KEY)) return -1;
    const i = this.slot(key);
    return this.keys[i] === key + KEY_BIAS ? (this.vals[i] as number) : -1;
  }

  has(key: number): boolean {
    if (!(key >= 0 && key <= MAX_KEY)) return false;
    return this.keys[this.slot(key)] === key + KEY_BIAS;
  }

  set(key: number, value: number): void {
    if (!(Number.isInteger(key) && key >= 0 && key <= MAX_KEY)) throw new RangeError(`TypedHash key ${key} is not an integer in [0, ${MAX_KEY}]`);
    if (key > NARROW_MAX_KEY && this.keys instanceof Uint32Array) this.keys = Float64Array.from(this.keys);
    if (this.vals instanceof Uint32Array && !(value >= 0 && value <= 0xffffffff && Number.isInteger(value))) this.vals = Float64Array.from(this.vals);
    const i = this.slot(key);
    if (this.keys[i] !== key + KEY_BIAS) {
      if (this.keys[i] === EMPTY) this.used++;
      this.keys[i] = key + KEY_BIAS;
      this.count++;
    }
    this.vals[i] = value;
    if (this.used * 10 > this.keys.length * 7) this.rehash(this.count * 4 > this.keys.length ? this.keys.length * 2 : this.keys.length);
  }

  delete(key: number): boolean {
    if (!(key >= 0 && key <= MAX_KEY)) return false;
    const i = this.slot(key);
    if (this.keys[i] !== key + KEY_BIAS) return false;
    this.keys[i] = DELETED;
    this.count--;
    return true;
  }

  forEach(fn: (value: number, key: number) => void): void {
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i] as number;
      if (k >= KEY_BIAS) fn(this.vals[i] as number, k - KEY_BIAS);
    }
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = oldKeys instanceof Uint32Array ? new Uint32Array(capacity) : new Float64Array(capacity);
    this.vals = oldVals instanceof Uint32Array ? new Uint32Array(capacity) : new Float64Array(capacity);
    this.count = 0;
    this.used = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i] as number;
      if (k >= KEY_BIAS) this.set(k - KEY_BIAS, oldVals[i] as number);
    }
  }
}
