import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { MiddlewareObj } from '@middy/core';

/**
 * X-Ray tracing (Powertools Tracer) for the functions services call: publish,
 * the HTTP API and the queue consumer. Off locally
 * (POWERTOOLS_TRACE_ENABLED=false from `npm start`).
 *
 * Not on connect/disconnect/default, nor on the deliver worker: Tracer brings
 * aws-xray-sdk-core, ~135 KB minified and ~15 ms more CPU to load, which would
 * take the WebSocket bundles past their 250 KB target and slow the parallel
 * cold starts of a large fan-out. Active tracing (`provider.tracing.lambda`
 * in serverless.yml) still gives them an invocation segment, with no code in
 * the bundle.
 *
 * captureHTTPsRequests is off: it would patch node:http and turn every post of
 * a fan-out into a subsegment (10,000 posts would overflow X-Ray's 64 KB
 * segment document and cost CPU on the hot path).
 */
export const tracer = new Tracer({ serviceName: 'pushwire', captureHTTPsRequests: false });

export const withTracing = (): MiddlewareObj =>
  captureLambdaHandler(tracer, { captureResponse: false }) as MiddlewareObj;
