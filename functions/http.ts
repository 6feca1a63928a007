import middy from '@middy/core';
import { deviceOperation } from '../lib/aws-clients.js';
import { eventOutbox, events, loadSecrets, logger } from '../lib/clients.js';
import { handleHttp } from '../lib/edge/http.js';
import { secretsLoaded } from '../lib/edge/middleware.js';
import { operations } from '../lib/edge/operations.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { withTracing } from '../lib/observability/tracing.js';

/** `http`: POST /publish, /presence, /kick, /devices (IAM-authorized API Gateway). See docs/services.md, "HTTP API". */
export const handler = middy(async (event: unknown) =>
  handleHttp(event, {
    operations: { ...operations, devices: (input) => deviceOperation()(input) },
    logger: logger(),
    metrics: metrics(),
  }),
)
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(withTracing())
  // A failed secrets load is thrown: API Gateway answers 502, Lambda counts
  // an error (the errors alarm), and the next call retries the load.
  .use(secretsLoaded(loadSecrets));
