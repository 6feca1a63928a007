import { answerAck } from '../lib/acks/client-ack.js';
import { clientAcks } from '../lib/clients.js';
import { frameRoute } from '../lib/edge/frame-route.js';
import { tally } from '../lib/observability/metrics.js';

/**
 * The `ack` route (issue 18, PW-K2): a client's `{"action":"ack","ids":[…]}`.
 * API Gateway routes it here by its action, so acks (their script and the
 * dismiss fan-out) are not in `$default`'s bundle; one invocation per batch.
 * The frame goes through the same checks as every `$default` frame.
 */
export const handler = frameRoute(() => ({
  acks: async (connection, ids, post) => {
    try {
      const reply = await answerAck(connection, ids, clientAcks(), post);
      tally('Acks', reply.ids.length);
      if (reply.refused) tally('AcksRefused', reply.refused.length);
      return reply;
    } catch (error) {
      tally('AcksRefused', ids.length);
      throw error;
    }
  },
}));
