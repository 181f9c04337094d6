/**
 * RouteMirror: the copy of the routes that a native engine's fast path reads
 * (lib/native/engine.ts implements it; MemoryMirror models it for tests). JS
 * is the only writer. The fence protocol: before JS reads or decides anything
 * about blocks it calls fence() on them (they turn SLOW and no fast request
 * that saw their old routes is still running); when it is done it calls
 * publish() with their final routes, always (in a finally). With fuse-native
 * there is no engine and the mirror is NO_MIRROR, which does nothing.
 *
 * MirrorLink is RemapDevice's side: reused scratch arrays, so a mirrored
 * request allocates nothing once they are big enough.
 */
import { ROUTE_MAIN, ROUTE_SLOW, routeOf, type RouteLookup } from './route.js';

export { ROUTE_MAIN, ROUTE_SLOW };

export interface RouteMirror {
  /** Routes of [firstBlock, firstBlock+blockCount) become SLOW; returns when no fast request still uses the old ones. */
  fence(firstBlock: number, blockCount: number): void;
  /** Stores final routes: routes[i] is the route of blocks[i] (ROUTE_MAIN, ROUTE_SLOW or a spare block). */
  publish(blocks: Float64Array, routes: Float64Array, count: number): void;
  /** Every write to the pair goes to JS while on; turning it on waits for fast writes in flight. */
  setWritesSlow(on: boolean): void;
}

export const NO_MIRROR: RouteMirror = Object.freeze({
  fence: () => undefined,
  publish: () => undefined,
  setWritesSlow: () => undefined,
});

/** Blocks published per call when a mirror is attached. */
const ATTACH_CHUNK = 65536;

export class MirrorLink {
  mirror: RouteMirror = NO_MIRROR;
  private blocks = new Float64Array(16);
  private routes = new Float64Array(16);

  /**
   * Publishes the route of every remapped and pending block, then serves
   * `mirror`. In chunks of ATTACH_CHUNK blocks, straight from the index: a
   * table of a million entries costs no array of a million objects.
   */
  attach(mirror: RouteMirror, index: RouteLookup & { forEachRemapped(fn: (mainBlock: number, spareBlock: number) => void): void; pendingBlocks(): number[] }, writesSlow: boolean): void {
    this.mirror = mirror;
    if (mirror === NO_MIRROR) return; // detached: nothing to publish
    this.ensure(ATTACH_CHUNK);
    let n = 0;
    // A remapped block's route is its spare block (routeOf's first case), passed along so it is not looked up again.
    const add = (block: number, route: number): void => {
      this.blocks[n] = block;
      this.routes[n] = route;
      if (++n === ATTACH_CHUNK) {
        mirror.publish(this.blocks, this.routes, n);
        n = 0;
      }
    };
    index.forEachRemapped(add);
    for (const b of index.pendingBlocks()) add(b, routeOf(index, b));
    if (n > 0) mirror.publish(this.blocks, this.routes, n);
    mirror.setWritesSlow(writesSlow);
  }

  /** Fences the blocks a byte range covers. */
  fenceBytes(byteOffset: number, byteLength: number, blockSize: number): void {
    if (byteLength <= 0) return;
    const first = Math.floor(byteOffset / blockSize);
    this.mirror.fence(first, Math.floor((byteOffset + byteLength - 1) / blockSize) - first + 1);
  }

  /** Publishes the final routes of the blocks a byte range covers. */
  publishBytes(index: RouteLookup, byteOffset: number, byteLength: number, blockSize: number): void {
    if (byteLength <= 0) return;
    const first = Math.floor(byteOffset / blockSize);
    this.publishBlocks(index, first, Math.floor((byteOffset + byteLength - 1) / blockSize) - first + 1);
  }

  publishBlocks(index: RouteLookup, firstBlock: number, blockCount: number): void {
    this.ensure(blockCount);
    for (let i = 0; i < blockCount; i++) {
      this.blocks[i] = firstBlock + i;
      this.routes[i] = routeOf(index, firstBlock + i);
    }
    this.mirror.publish(this.blocks, this.routes, blockCount);
  }

  private ensure(count: number): void {
    if (count <= this.blocks.length) return;
    const cap = Math.max(count, this.blocks.length * 2);
    this.blocks = new Float64Array(cap);
    this.routes = new Float64Array(cap);
  }
}
