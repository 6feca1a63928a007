import type { Received } from './resuming-client.js';

/** What the fault suite and the soak count of their clients. */
interface Receiver {
  received: Map<string, Received>;
}

/** (message, client) pairs expected but not received: `expectedOf(i)` lists client i's ids. */
export function missingPairs(clients: Receiver[], expectedOf: (i: number) => string[]): number {
  return clients.reduce(
    (sum, c, i) => sum + expectedOf(i).filter((id) => !c.received.has(id)).length,
    0,
  );
}

/**
 * Pairs expected and delivered, and how many numbered messages (ids
 * `<prefix>-…`, data `{ n }`) a client was handed under two different ids:
 * what dedupe by id cannot remove.
 */
export function tally(
  clients: Receiver[],
  expectedOf: (i: number) => string[],
  prefix: string,
): { expected: number; delivered: number; duplicated: number } {
  let expected = 0;
  let delivered = 0;
  let duplicated = 0;
  for (const [i, c] of clients.entries()) {
    const ids = expectedOf(i);
    expected += ids.length;
    delivered += ids.filter((id) => c.received.has(id)).length;
    const numbers = new Map<number, number>();
    for (const r of c.received.values()) {
      if (!r.id.startsWith(`${prefix}-`)) continue;
      const n = (r.data as { n?: number }).n;
      if (typeof n === 'number') numbers.set(n, (numbers.get(n) ?? 0) + 1);
    }
    duplicated += [...numbers.values()].filter((count) => count > 1).length;
  }
  return { expected, delivered, duplicated };
}
