import { clientPublishing, invokeJson } from '../lib/aws-clients.js';
import { config } from '../lib/clients.js';
import { frameRoute } from '../lib/edge/frame-route.js';

/** `$default`: every client frame. The returned body is the reply frame (a two-way route). */
export const handler = frameRoute(() => ({
  clientPublish: clientPublishing(),
  devices: (request) => invokeJson(config().devicesFunctionName, request),
}));
