/** `npm run listen -- --user alice [--topic news] [--port 3001]`: prints every frame that arrives. */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { devToken } from './token.js';

const { values } = parseArgs({
  options: {
    user: { type: 'string', default: 'alice' },
    topic: { type: 'string', multiple: true, default: [] },
    port: { type: 'string', default: '3001' },
    'lambda-port': { type: 'string' },
    since: { type: 'string' },
  },
});
const topics = values.topic ?? [];
const token = await devToken(values.user ?? 'alice', { topics });
const query = new URLSearchParams({ token, ...(values.since && { since: values.since }) });
const ws = new WebSocket(`ws://localhost:${values.port}?${query}`);

ws.on('open', () => {
  console.log(`listening as ${values.user} on ws://localhost:${values.port} (Ctrl-C to stop)`);
  for (const topic of topics) ws.send(JSON.stringify({ action: 'subscribe', topic }));
  if (values.since) ws.send(JSON.stringify({ action: 'ping' }));
  // API Gateway closes a connection idle for 10 minutes; a ping also renews our TTL.
  setInterval(() => ws.send(JSON.stringify({ action: 'ping' })), 5 * 60_000).unref();
});
ws.on('message', (data) => console.log(data.toString()));
/**
 * Why a handshake is refused, by status (docs/protocol.md, PW-H3). API Gateway
 * and serverless-offline give a refused client only the status (the
 * `$connect` function's error frame is dropped), so a body or an
 * `x-pushwire-error` header is printed when there is one, and the status is
 * explained as the server defines it.
 */
const REFUSALS: Record<number, string> = {
  400: 'the server refused `since`: it is not a cursor (<ms>-<seq>, e.g. 1732752000000-0)',
  401:
    'the server refused the token (missing, malformed, badly signed, expired, too long-lived or ' +
    'revoked). listen signs it with ' +
    (process.env['JWT_SECRET']
      ? 'JWT_SECRET from this shell'
      : 'the dev secret (JWT_SECRET is not set in this shell)') +
    ': npm start must run with the same JWT_SECRET',
  429: 'this user already has MAX_CONNECTIONS_PER_USER connections',
  500: 'the server failed (e.g. it cannot reach Redis)',
  502: 'the $connect function failed or is missing',
  503: "the identity provider's key set (JWT_JWKS_URL) could not be fetched: retry",
};
ws.on('unexpected-response', (_req, res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    body += chunk;
  });
  res.on('end', () => {
    const status = res.statusCode ?? 0;
    const header = res.headers['x-pushwire-error'];
    // A body that only repeats the status line (what `ws` writes) says nothing more.
    const text = body.trim() === res.statusMessage ? '' : body.trim();
    const said = [header && `x-pushwire-error: ${header}`, text].filter(Boolean).join('; ');
    console.error(
      [
        `connection refused: HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(),
        `  ${REFUSALS[status] ?? 'see the status codes in docs/protocol.md, PW-H3'}.`,
        said
          ? `  the server said: ${said}`
          : '  the server sent no body (a refused handshake carries only its status); the exact ' +
            'reason is the "handshake refused" line in npm start\'s output.',
      ].join('\n'),
    );
    process.exit(1);
  });
});
ws.on('error', (error) => {
  console.error(`connection failed: ${error.message} (is \`npm start\` running?)`);
  process.exit(1);
});
ws.on('close', (code) => {
  console.log(`closed (${code})`);
  process.exit(0);
});
