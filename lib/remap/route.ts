/**
 * Routes (pure): where the fast path may send a main block of a pair, as the
 * native engine's table holds it (docs: the engine contract).
 *   ROUTE_MAIN (-1)  on main at the same offset (every block without an entry);
 *   ROUTE_SLOW (-2)  needs a decision, so every request touching it goes to JS
 *                    (pending blocks; blocks JS is working on, "fenced");
 *   >= 0             the spare block that holds the main block.
 * JS is the only writer of routes; routeOf is the rule it publishes by.
 */

export const ROUTE_MAIN = -1;
export const ROUTE_SLOW = -2;

/** The part of RemapIndex a route depends on. */
export interface RouteLookup {
  spareBlockOf(mainBlock: number): number;
  isPending(mainBlock: number): boolean;
}

/** The spare block if remapped; SLOW if pending; else MAIN. */
export function routeOf(index: RouteLookup, block: number): number {
  const spareBlock = index.spareBlockOf(block);
  if (spareBlock >= 0) return spareBlock;
  return index.isPending(block) ? ROUTE_SLOW : ROUTE_MAIN;
}
