/**
 * MemoryMirror: a faithful model of the native engine's route table, for
 * tests. `routes` holds every block whose route is not MAIN; fence() turns
 * blocks SLOW and records the fence; publish() stores final routes; the
 * `writesSlow` flag is the per-pair one. `fastPath` answers what the engine's
 * fast path would do with a request right now. Every call is appended to
 * `log` (which a test may share with a journal or a device to check order).
 */
import { ROUTE_MAIN, ROUTE_SLOW, type RouteMirror } from './route-mirror.js';

export interface FenceRecord {
  firstBlock: number;
  blockCount: number;
  epoch: number;
}

export class MemoryMirror implements RouteMirror {
  readonly routes = new Map<number, number>();
  readonly fences: FenceRecord[] = [];
  /** Blocks fenced and not yet published. */
  readonly fenced = new Set<number>();
  writesSlow = false;
  epoch = 0;

  constructor(readonly log: string[] = []) {}

  fence(firstBlock: number, blockCount: number): void {
    for (let b = firstBlock; b < firstBlock + blockCount; b++) {
      this.routes.set(b, ROUTE_SLOW);
      this.fenced.add(b);
    }
    this.epoch++;
    this.fences.push({ firstBlock, blockCount, epoch: this.epoch });
    this.log.push(`fence ${firstBlock}+${blockCount}`);
  }

  publish(blocks: Float64Array, routes: Float64Array, count: number): void {
    const parts: string[] = [];
    for (let i = 0; i < count; i++) {
      const block = blocks[i] as number;
      const route = routes[i] as number;
      if (route === ROUTE_MAIN) this.routes.delete(block);
      else this.routes.set(block, route);
      this.fenced.delete(block);
      parts.push(`${block}=${route}`);
    }
    this.log.push(`publish ${parts.join(' ')}`);
  }

  setWritesSlow(on: boolean): void {
    this.writesSlow = on;
    this.log.push(`writesSlow ${on}`);
  }

  routeOf(block: number): number {
    return this.routes.get(block) ?? ROUTE_MAIN;
  }

  /** What the engine would do with a request on [firstBlock, firstBlock+blockCount): serve it, or hand it to JS. */
  fastPath(firstBlock: number, blockCount: number, write: boolean): 'fast' | 'slow' {
    if (write && this.writesSlow) return 'slow';
    for (let b = firstBlock; b < firstBlock + blockCount; b++) if (this.routeOf(b) === ROUTE_SLOW) return 'slow';
    return 'fast';
  }
}
