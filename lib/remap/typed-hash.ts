/**
 * TypedHash: a number -> number hash map in two Float64Arrays (open
 * addressing, linear probing), for keys that are non-negative integers below
 * 2^53. A million entries take 32 MB and no per-entry objects, which keeps the
 * garbage collector out of the I/O path. get() returns -1 for a missing key.
 */
const EMPTY = -1;
const DELETED = -2;

export class TypedHash {
  private keys: Float64Array;
  private vals: Float64Array;
  private count = 0;
  private used = 0; // live + deleted slots

  constructor(capacity = 16) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Float64Array(cap);
  }

  get size(): number {
    return this.count;
  }

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let h = Math.imul((key % 4294967296) ^ Math.imul(Math.floor(key / 4294967296), 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    let i = h & mask;
    let firstDeleted = -1;
    for (;;) {
      const k = this.keys[i] as number;
      if (k === key) return i;
      if (k === EMPTY) return firstDeleted >= 0 ? firstDeleted : i;
      if (k === DELETED && firstDeleted < 0) firstDeleted = i;
      i = (i + 1) & mask;
    }
  }

  get(key: number): number {
    const i = this.slot(key);
    return this.keys[i] === key ? (this.vals[i] as number) : -1;
  }

  has(key: number): boolean {
    return this.keys[this.slot(key)] === key;
  }

  set(key: number, value: number): void {
    const i = this.slot(key);
    if (this.keys[i] !== key) {
      if (this.keys[i] === EMPTY) this.used++;
      this.keys[i] = key;
      this.count++;
    }
    this.vals[i] = value;
    if (this.used * 10 > this.keys.length * 7) this.rehash(this.count * 4 > this.keys.length ? this.keys.length * 2 : this.keys.length);
  }

  delete(key: number): boolean {
    const i = this.slot(key);
    if (this.keys[i] !== key) return false;
    this.keys[i] = DELETED;
    this.count--;
    return true;
  }

  forEach(fn: (value: number, key: number) => void): void {
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i] as number;
      if (k >= 0) fn(this.vals[i] as number, k);
    }
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Float64Array(capacity).fill(EMPTY);
    this.vals = new Float64Array(capacity);
    this.count = 0;
    this.used = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i] as number;
      if (k >= 0) this.set(k, oldVals[i] as number);
    }
  }
}
