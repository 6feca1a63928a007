/**
 * Lifecycle events end to end under `npm start` with EVENTS=all: real
 * WebSocket clients connect, subscribe, get refused, unsubscribe and leave;
 * the functions (under serverless-offline) hand the events to Redis, the
 * relay sends them with signed PutEvents to the local stand-in bus, which
 * checks each request's shape and SigV4 signature and prints every event.
 * The test reads those lines from npm start's output.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { eventDetailErrors } from '../helpers/events-schema.js';
import { type NpmStart, spawnNpmStart } from '../helpers/npm-start.js';
import { eventually } from '../helpers/offline.js';

let started: NpmStart;

beforeAll(async () => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EVENTS: 'all',
    PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never',
  };
  delete env['REDIS_URL'];
  delete env['PUSHWIRE_BUILD_DIR'];
  delete env['JWT_SECRET'];
  started = await spawnNpmStart(env, { args: ['--quiet'] });
  await started.whenUp(120_000);
}, 150_000);

afterAll(async () => {
  const pid = started?.child.pid;
  if (pid && started.child.exitCode === null) {
    const exited = new Promise((resolve) => started.child.once('exit', resolve));
    process.kill(-pid, 'SIGTERM');
    await exited;
  }
});

interface Seen {
  detailType: string;
  detail: Record<string, unknown>;
}

/** The events npm start printed ("pushwire event <detail-type> <detail>"). */
const events = (): Seen[] =>
  started
    .output()
    .split('\n')
    .map((line) => /^pushwire event (\S+) (\{.*\})$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({ detailType: m[1] as string, detail: JSON.parse(m[2] as string) }));

const about = (connectionId: string) =>
  events().filter((e) => e.detail['connectionId'] === connectionId);

it('reports a connection from connect to disconnect, in order, through a signed PutEvents', async () => {
  // Prepare
  const token = await devToken('events-alice', { topics: ['news'] });
  const client = await TestClient.connect(`ws://localhost:${started.wsPort}?token=${token}`);
  const { connectionId } = await client.request({ action: 'ping' }, (f) => f.type === 'pong');

  // Act
  await client.request({ action: 'subscribe', topic: 'news' }, (f) => f.type === 'subscribed');
  await client.request({ action: 'subscribe', topic: 'secret' }, (f) => f.type === 'error');
  await client.request({ action: 'unsubscribe', topic: 'news' }, (f) => f.type === 'unsubscribed');
  await client.close();

  // Assess
  const seen = await eventually(
    () => {
      const list = about(String(connectionId));
      return list.some((e) => e.detailType === 'pushwire.disconnected') && list;
    },
    30_000,
    'the disconnected event',
  );
  expect(seen.map((e) => e.detailType)).toEqual([
    'pushwire.connected',
    'pushwire.subscribed',
    'pushwire.refused',
    'pushwire.unsubscribed',
    'pushwire.disconnected',
  ]);
  expect(seen.map((e) => e.detail)).toMatchObject([
    { userId: 'events-alice', stage: 'local', eventId: expect.any(String), at: expect.any(Number) },
    { userId: 'events-alice', topic: 'news' },
    { route: 'default', code: 'forbidden' },
    { userId: 'events-alice', topic: 'news', reason: 'client' },
    { userId: 'events-alice', reason: 'client_close' },
  ]);
  for (const e of seen)
    expect(eventDetailErrors(e.detailType.replace('pushwire.', ''), e.detail)).toEqual([]);
  // The stand-in bus refused nothing (bad shape or signature would say so in the output).
  expect(started.output()).not.toMatch(/not sent|AccessDenied|ValidationException/);
});

it('reports a refused handshake with its code', async () => {
  // Act
  const refused = await TestClient.connect(`ws://localhost:${started.wsPort}?token=nonsense`).then(
    () => undefined,
    (error: unknown) => error,
  );

  // Assess
  expect(refused).toBeInstanceOf(HandshakeRefused);
  const seen = await eventually(
    () => {
      const list = events().filter(
        (e) => e.detailType === 'pushwire.refused' && e.detail['route'] === 'connect',
      );
      return list.length > 0 && list;
    },
    30_000,
    'a refused handshake event',
  );
  expect(seen[0]?.detail).toMatchObject({ code: 'unauthorized', stage: 'local' });
});

it('reports a kicked connection once, as kick (its $disconnect finds nothing left)', async () => {
  // Prepare
  const token = await devToken('events-bob');
  const client = await TestClient.connect(`ws://localhost:${started.wsPort}?token=${token}`);
  const { connectionId } = await client.request({ action: 'ping' }, (f) => f.type === 'pong');
  const closed = new Promise((resolve) => client.ws.once('close', resolve));

  // Act: the HTTP API's kick, as a service would call it
  const res = await fetch(`http://localhost:${started.httpPort}/kick`, {
    method: 'POST',
    body: JSON.stringify({ userId: 'events-bob' }),
  });
  await closed;

  // Assess
  expect(res.status).toBe(200);
  const seen = await eventually(
    () => {
      const list = about(String(connectionId));
      return list.some((e) => e.detailType === 'pushwire.disconnected') && list;
    },
    30_000,
    'the disconnected event',
  );
  // Were bob's $disconnect to report too, it would do so before a connection
  // opened and closed after it: wait for that one's end, then look again.
  const marker = await TestClient.connect(
    `ws://localhost:${started.wsPort}?token=${await devToken('events-marker')}`,
  );
  const { connectionId: markerId } = await marker.request(
    { action: 'ping' },
    (f) => f.type === 'pong',
  );
  await marker.close();
  await eventually(
    () => about(String(markerId)).some((e) => e.detailType === 'pushwire.disconnected'),
    30_000,
    "the marker's disconnected event",
  );
  expect(about(String(connectionId)).length).toBe(seen.length);
  expect(seen.map((e) => [e.detailType, e.detail['reason']])).toEqual([
    ['pushwire.connected', undefined],
    ['pushwire.disconnected', 'kick'],
  ]);
});
