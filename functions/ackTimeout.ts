import middy from '@middy/core';
import { handleTimeoutBatch } from '../lib/acks/timeout.js';
import { pushSender, sendAckTimeout } from '../lib/aws-clients.js';
import { ackStore, loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { metrics, tally, withMetrics } from '../lib/observability/metrics.js';

/**
 * `ackTimeout` (issue 18): the SQS queue delivers each acknowledged message's
 * timeout after its delay; no ack by then means a push (lib/acks/timeout.ts).
 * Failed records are reported (ReportBatchItemFailures) and delivered again.
 */
export const handler = middy(async (event: unknown) =>
  handleTimeoutBatch(event, {
    store: ackStore(),
    sender: pushSender(),
    schedule: (message, delay) => {
      const send = sendAckTimeout();
      if (!send) throw new Error('ACK_QUEUE_URL is not set: cannot wait again for a long timeout');
      return send(message, delay);
    },
    epoch: () => registry().epoch(),
    count: (metric, n = 1) => tally(metric, n),
    logger: logger(),
  }),
)
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
