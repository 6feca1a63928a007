import { encodeFrame } from '../edge/protocol.js';
import type { Gateway } from '../gateway/gateway.js';
import { normalizeCursor } from '../registry/cursor.js';
import type { Audience, Recipient } from '../registry/keys.js';
import type { ConnectionRegistry } from '../registry/types.js';

export interface ResumeDeps {
  registry: ConnectionRegistry;
  gateway: Gateway;
  /** History entries read per Redis step. */
  batch?: number;
}

export interface ResumeOutcome {
  /** Every message after `since` was still in history and has been replayed. */
  recovered: boolean;
  replayed: number;
  /** The connection vanished during replay (and has been pruned). */
  gone: boolean;
}

/**
 * Replays an audience's history after `since` to one connection, in order,
 * then makes it live. The connection must already be in the audience's
 * resuming set (registry.beginResume or a resuming subscribe/register): from
 * then on live publishes skip it and land in the history it is reading, and
 * the final step moves it to live atomically, so nothing is missed or doubled.
 */
export async function replay(
  audience: Audience,
  connection: Recipient,
  since: string,
  deps: ResumeDeps,
): Promise<ResumeOutcome> {
  const { registry, gateway } = deps;
  let recovered = await registry.recoverable(audience, since);
  const topic = audience.kind === 'topic' ? audience.name : undefined;
  let cursor = normalizeCursor(since);
  let replayed = 0;
  for (;;) {
    const step = await registry.resumeStep(audience, connection, cursor, deps.batch ?? 100);
    if (step.state === 'live') return { recovered, replayed, gone: false };
    if (step.state === 'gone') return { recovered, replayed, gone: true };
    // Publishes go on during a replay and may trim history past our cursor.
    if (step.gap) recovered = false;
    for (const { cursor: entryCursor, entry } of step.entries) {
      const { id, data } = JSON.parse(entry) as { id: string; data: unknown };
      const frame = encodeFrame({
        type: 'message',
        id,
        ...(topic !== undefined && { topic }),
        cursor: entryCursor,
        data,
      });
      // One at a time: concurrent posts may overtake each other.
      if (
        (await gateway.post(connection.endpoint, connection.connectionId, Buffer.from(frame))) ===
        'gone'
      ) {
        await registry.remove(connection.connectionId);
        return { recovered, replayed, gone: true };
      }
      replayed++;
      cursor = entryCursor;
    }
  }
}
