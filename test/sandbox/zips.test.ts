import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import JSZip from 'jszip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_LIMITS } from '../../bench/bundles.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { eventDetailErrors } from '../helpers/events-schema.js';
import { LambdaSandbox, type Packaged, packageService } from './lambda-sandbox.js';
import { NODE_VERSIONS, type NodeMajor, nodeBinary } from './node-runtimes.js';
import {
  EventBridgeStandIn,
  LambdaInvokeStandIn,
  ManagementApiStandIn,
  SsmStandIn,
} from './stand-ins.js';

/**
 * The packaged zips (`osls package`), run as Lambda runs them: each unzipped
 * alone with no node_modules above it, under Node 22 and Node 24, with only
 * the environment Lambda gives a function. The AWS APIs are local stand-ins
 * that check every request's SigV4 signature; Redis is a private server.
 * It proves the zips carry everything they load and that the whole path
 * works from them; it cannot prove IAM permissions, VPC networking or the
 * real API Gateway (README, "Deploying").
 */

const STAGE = 'prod';
const REGION = 'eu-west-1';
// Read by the functions from the SSM stand-in, never given to them by value.
const JWT_SECRET = 'sandbox-secret-of-at-least-32-bytes!';
// What Lambda puts in the environment for the role (a session: a token too).
const CREDENTIALS = {
  accessKeyId: 'ASIASANDBOXEXAMPLE',
  secretAccessKey: 'sandbox/secret+key=EXAMPLE',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE//session+token=',
};
const DOMAIN = 'abc123def4.execute-api.eu-west-1.amazonaws.com';
const FANOUT_CHUNK = 3;

let redisServer: RedisServer;
let redis: Redis;
let mgmt: ManagementApiStandIn;
let ssm: SsmStandIn;
let invokeApi: LambdaInvokeStandIn;
let eventBridge: EventBridgeStandIn;
let packaged: Packaged;
/** The sandbox of the Node version under test: the Invoke API runs `deliver` in it. */
let current: LambdaSandbox | undefined;

beforeAll(async () => {
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  mgmt = await ManagementApiStandIn.start(STAGE, REGION, CREDENTIALS);
  eventBridge = await EventBridgeStandIn.start(REGION, CREDENTIALS);
  ssm = await SsmStandIn.start(REGION, CREDENTIALS, {
    '/pushwire/prod/redis-url': redisServer.url,
    '/pushwire/prod/jwt-secret': JWT_SECRET,
  });
  invokeApi = await LambdaInvokeStandIn.start(REGION, CREDENTIALS, async (name, payload) => {
    if (!current) throw new Error('no sandbox running');
    const outcome = await current.invoke(name, payload);
    return outcome.ok ? outcome : { ok: false, error: outcome.error };
  });
  // The shell a deploy would package from: these end up in the template.
  const dir = mkdtempSync(join(tmpdir(), 'pushwire-package-'));
  packaged = await packageService(dir, STAGE, REGION, {
    // Secrets by parameter (issue 9): the template names them, the functions
    // fetch them (signed) at cold start. The private Redis has no TLS.
    JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    REDIS_ALLOW_PLAINTEXT: 'true',
    AWS_ENDPOINT_URL_SSM: ssm.url,
    WS_CALLBACK_URL: mgmt.url,
    LAMBDA_ENDPOINT: invokeApi.url,
    FANOUT_CHUNK: String(FANOUT_CHUNK),
    FANOUT_PARALLEL_CHUNKS: '2',
    // Every lifecycle event, relayed by the `events` zip to the stand-in bus.
    EVENTS: 'all',
    AWS_ENDPOINT_URL_EVENTBRIDGE: eventBridge.url,
  });
  // Both runtimes up front (fetched through npm once, then cached).
  await Promise.all(Object.keys(NODE_VERSIONS).map((m) => nodeBinary(Number(m) as NodeMajor)));
}, 300_000);

afterAll(async () => {
  await current?.stop();
  await invokeApi?.stop();
  await mgmt?.stop();
  await eventBridge?.stop();
  await ssm?.stop();
  await redis?.quit();
  await redisServer?.stop();
  if (packaged) rmSync(packaged.dir, { recursive: true, force: true });
});

it('packages every function for a Node runtime the sandbox runs, its environment in plain strings', () => {
  const keys = [...packaged.functions.keys()].sort();
  expect(keys).toEqual([
    'connect',
    'default',
    'deliver',
    'disconnect',
    'events',
    'http',
    'kick',
    'presence',
    'publish',
    'queue',
  ]);
  for (const fn of packaged.functions.values()) {
    expect(Object.keys(NODE_VERSIONS).map((m) => `nodejs${m}.x`)).toContain(fn.runtime);
    expect(fn.environment['WS_CALLBACK_URL']).toBe(mgmt.url);
    expect(fn.environment['FANOUT_CHUNK']).toBe(String(FANOUT_CHUNK));
  }
});

it('keeps each zip within its bundle size target (one .cjs file, 1 KB = 1,000 bytes)', async () => {
  for (const fn of packaged.functions.values()) {
    const zip = await JSZip.loadAsync(readFileSync(fn.zip));
    const files = Object.values(zip.files).filter((f) => !f.dir);
    expect(files.map((f) => f.name)).toEqual([`functions/${fn.key}.cjs`]);
    const bytes = (await (files[0] as JSZip.JSZipObject).async('nodebuffer')).byteLength;
    const limit = BUNDLE_LIMITS[fn.key];
    if (limit !== undefined) expect(bytes, `${fn.key}.cjs`).toBeLessThanOrEqual(limit);
  }
});

let connections = 0;
const newConnectionId = () => `Sbx${(++connections).toString(36)}Conn=`;

function requestContext(connectionId: string, routeKey: string, eventType: string) {
  const now = Date.now();
  return {
    routeKey,
    eventType,
    messageDirection: 'IN',
    extendedRequestId: `ext-${now}`,
    requestTime: new Date(now).toUTCString(),
    stage: STAGE,
    connectedAt: now,
    requestTimeEpoch: now,
    identity: { sourceIp: '203.0.113.7', userAgent: 'sandbox' },
    requestId: `req-${now}`,
    domainName: DOMAIN,
    connectionId,
    apiId: 'abc123def4',
  };
}

const connectEvent = (connectionId: string, query: Record<string, string>) => ({
  headers: { Host: DOMAIN, 'Sec-WebSocket-Version': '13' },
  multiValueHeaders: { Host: [DOMAIN], 'Sec-WebSocket-Version': ['13'] },
  queryStringParameters: query,
  multiValueQueryStringParameters: Object.fromEntries(
    Object.entries(query).map(([k, v]) => [k, [v]]),
  ),
  requestContext: requestContext(connectionId, '$connect', 'CONNECT'),
  isBase64Encoded: false,
});

const frameEvent = (connectionId: string, frame: unknown) => ({
  requestContext: {
    ...requestContext(connectionId, '$default', 'MESSAGE'),
    messageId: `msg-${Date.now()}`,
  },
  body: JSON.stringify(frame),
  isBase64Encoded: false,
});

const disconnectEvent = (connectionId: string) => ({
  headers: { Host: DOMAIN },
  multiValueHeaders: { Host: [DOMAIN] },
  requestContext: {
    ...requestContext(connectionId, '$disconnect', 'DISCONNECT'),
    disconnectStatusCode: 1001,
    disconnectReason: 'Going away',
  },
  isBase64Encoded: false,
});

interface Reply {
  statusCode: number;
  body?: string;
}
const replyFrame = (reply: Reply) => JSON.parse(reply.body ?? 'null') as Record<string, unknown>;

describe.each(Object.keys(NODE_VERSIONS).map(Number) as NodeMajor[])(
  'the packaged zips on Node %i',
  (major) => {
    let sandbox: LambdaSandbox;
    let root: string;
    const user = (name: string) => `${name}-node${major}`;
    // Redis is shared by both runs: each has its own users and topic.
    const topic = `news-node${major}`;

    /** $connect as API Gateway runs it; on 200 the stand-in holds the connection. */
    async function connect(userId: string, topics: string[] = []): Promise<string> {
      const connectionId = newConnectionId();
      const token = await devToken(userId, { secret: JWT_SECRET, topics });
      const reply = await sandbox.invokeOk<Reply>('connect', connectEvent(connectionId, { token }));
      expect(reply.statusCode).toBe(200);
      mgmt.open(connectionId);
      return connectionId;
    }
    const send = (connectionId: string, frame: unknown) =>
      sandbox.invokeOk<Reply>('default', frameEvent(connectionId, frame));

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), `pushwire-sandbox-node${major}-`));
      sandbox = await LambdaSandbox.create(
        { root, node: await nodeBinary(major), region: REGION, credentials: CREDENTIALS },
        packaged,
      );
      current = sandbox;
    }, 120_000);

    afterAll(async () => {
      await sandbox?.stop();
      if (current === sandbox) current = undefined;
      rmSync(root, { recursive: true, force: true });
    });

    it('runs each handler on that Node version, with no node_modules anywhere above it', async () => {
      // Assess: the sandbox refuses to start otherwise; and the binary is the one asked for.
      expect(root.startsWith(tmpdir())).toBe(true);
      const reply = await sandbox.invokeOk<Reply>('presence', { userIds: ['nobody'] });
      expect(reply).toEqual({ users: { nobody: { online: false, connections: 0 } } });
      expect(sandbox.coldStarts.map((c) => c.functionKey)).toEqual(['presence']);
      expect(await nodeBinary(major)).toContain(`-${NODE_VERSIONS[major]}`);
    });

    let alice1: string;
    let alice2: string;
    let bob: string;
    const members: string[] = [];

    it('$connect takes a token and refuses a bad one with 401', async () => {
      alice1 = await connect(user('alice'), [topic]);
      alice2 = await connect(user('alice'), [topic]);
      bob = await connect(user('bob'));
      const refused = await sandbox.invokeOk<Reply>(
        'connect',
        connectEvent(newConnectionId(), { token: 'not.a.token' }),
      );
      expect(refused.statusCode).toBe(401);
    });

    it('$default answers ping and subscribe, and a first frame posts nothing', async () => {
      // Prepare
      const postsBefore = mgmt.posts.length;
      // Act
      const pong = await send(alice1, { action: 'ping' });
      const subscribed = await send(alice1, { action: 'subscribe', topic });
      // Assess
      expect(replyFrame(pong)).toMatchObject({ type: 'pong' });
      expect(replyFrame(subscribed)).toEqual({ type: 'subscribed', topic });
      // The cold starts load the signer once, to read their secrets from SSM
      // (issue 9: secrets by parameter); the frames so far signed nothing else.
      const loaded = sandbox.loads
        .filter((l) => l.functionKey === 'connect' || l.functionKey === 'default')
        .flatMap((l) => l.requested);
      expect(loaded).toContain('node:crypto');
      expect(ssm.reads.length).toBeGreaterThan(0);
      expect(mgmt.posts.length).toBe(postsBefore);
    });

    let firstCursor = '';
    let secondCursor = '';

    it('publish to a user posts to each of their connections, signed for execute-api', async () => {
      // Act
      const first = await sandbox.invokeOk<Record<string, unknown>>('publish', {
        userId: user('alice'),
        data: { n: 1 },
      });
      const second = await sandbox.invokeOk<Record<string, unknown>>('publish', {
        userId: user('alice'),
        data: { n: 2, text: 'é ✓' },
        id: `second-${major}`,
      });
      // Assess
      expect(first).toMatchObject({
        recipients: 2,
        delivered: 2,
        gone: 0,
        failed: 0,
        stored: true,
      });
      expect(second).toMatchObject({
        recipients: 2,
        delivered: 2,
        gone: 0,
        failed: 0,
        stored: true,
      });
      firstCursor = first['cursor'] as string;
      secondCursor = second['cursor'] as string;
      for (const connectionId of [alice1, alice2])
        expect(mgmt.postsTo(connectionId)).toEqual([
          { type: 'message', id: first['id'], cursor: firstCursor, data: { n: 1 } },
          {
            type: 'message',
            id: `second-${major}`,
            cursor: secondCursor,
            data: { n: 2, text: 'é ✓' },
          },
        ]);
      expect(mgmt.signatureFailures).toEqual([]);
    });

    it('a resume replays what came after its cursor, posted through the gateway', async () => {
      // Prepare
      const before = mgmt.postsTo(alice2).length;
      // Act
      const reply = await send(alice2, { action: 'resume', since: firstCursor });
      // Assess
      expect(replyFrame(reply)).toEqual({ type: 'resumed', recovered: true });
      expect(mgmt.postsTo(alice2).slice(before)).toEqual([
        {
          type: 'message',
          id: `second-${major}`,
          cursor: secondCursor,
          data: { n: 2, text: 'é ✓' },
        },
      ]);
      // The first post evaluated the signed gateway, and only then.
      expect(sandbox.loads.at(-1)).toMatchObject({ functionKey: 'default', phase: 'invoke' });
      expect(sandbox.loads.at(-1)?.requested).toContain('node:http');
    });

    it('publish to a topic larger than a chunk goes through deliver workers, invoked signed', async () => {
      // Prepare: 7 more members, 8 in all: three chunks of at most 3
      for (let i = 0; i < 7; i++) {
        const id = await connect(user(`member${i}`), [topic]);
        members.push(id);
        expect(replyFrame(await send(id, { action: 'subscribe', topic }))).toEqual({
          type: 'subscribed',
          topic,
        });
      }
      const invocationsBefore = invokeApi.invocations.length;
      // Act
      const result = await sandbox.invokeOk<Record<string, unknown>>('publish', {
        topic,
        data: { headline: 'chunked' },
      });
      // Assess
      expect(result).toMatchObject({
        recipients: 8,
        delivered: 8,
        gone: 0,
        failed: 0,
        chunks: 3,
        stored: true,
      });
      const invocations = invokeApi.invocations.slice(invocationsBefore);
      expect(invocations).toHaveLength(3);
      for (const invocation of invocations)
        expect(invocation.functionName).toBe(`pushwire-${STAGE}-deliver`);
      expect(invokeApi.signatureFailures).toEqual([]);
      for (const connectionId of [alice1, ...members])
        expect(mgmt.postsTo(connectionId).at(-1)).toMatchObject({
          type: 'message',
          topic,
          data: { headline: 'chunked' },
        });
      expect(sandbox.coldStarts.some((c) => c.functionKey === 'deliver')).toBe(true);
    });

    it('a connection that went away is pruned at the next publish (410)', async () => {
      // Prepare
      const gone = members.pop() as string;
      mgmt.drop(gone);
      // Act
      const result = await sandbox.invokeOk<Record<string, unknown>>('publish', {
        topic,
        data: { headline: 'after' },
      });
      const presence = await sandbox.invokeOk<Record<string, unknown>>('presence', {
        topic,
      });
      // Assess
      expect(result).toMatchObject({ recipients: 8, delivered: 7, gone: 1, failed: 0 });
      expect(presence).toEqual({ topic: { name: topic, members: 7 } });
    });

    it('the HTTP API function publishes (REST event, AWS_IAM) and answers 400 with {error}', async () => {
      // Prepare
      const rest = (body: string) => ({
        resource: '/publish',
        path: '/publish',
        httpMethod: 'POST',
        headers: { 'Content-Type': 'application/json' },
        requestContext: {
          resourcePath: '/publish',
          httpMethod: 'POST',
          stage: STAGE,
          identity: { userArn: 'arn:aws:iam::123456789012:role/orders' },
        },
        body,
        isBase64Encoded: false,
      });

      // Act
      const ok = await sandbox.invokeOk<Reply & { headers: Record<string, string> }>(
        'http',
        rest(JSON.stringify({ userId: user('alice'), data: 'via http', id: `http-${major}` })),
      );
      const bad = await sandbox.invokeOk<Reply>('http', rest('{"userId":"x"}'));

      // Assess
      expect(ok.statusCode).toBe(200);
      expect(replyFrame(ok)).toMatchObject({ id: `http-${major}`, delivered: 2 });
      expect(mgmt.postsTo(alice1).at(-1)).toMatchObject({ id: `http-${major}`, data: 'via http' });
      expect(bad.statusCode).toBe(400);
      expect(replyFrame(bad)).toMatchObject({ error: { code: 'invalid_request' } });
    });

    it('the queue function publishes an SQS batch and names only the bad message', async () => {
      // Prepare
      const record = (messageId: string, body: string) => ({
        messageId,
        receiptHandle: `AQEB-${messageId}`,
        body,
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
        messageAttributes: {},
        md5OfBody: '0',
        eventSource: 'aws:sqs',
        eventSourceARN: `arn:aws:sqs:${REGION}:123456789012:pushwire-${STAGE}-publish`,
        awsRegion: REGION,
      });

      // Act
      const reply = await sandbox.invokeOk<{ batchItemFailures: { itemIdentifier: string }[] }>(
        'queue',
        {
          Records: [
            record(`q-${major}`, JSON.stringify({ userId: user('alice'), data: 'via sqs' })),
            record(`bad-${major}`, 'not json'),
          ],
        },
      );

      // Assess
      expect(reply).toEqual({ batchItemFailures: [{ itemIdentifier: `bad-${major}` }] });
      expect(mgmt.postsTo(alice1).at(-1)).toMatchObject({ id: `q-${major}`, data: 'via sqs' });
    });

    it('presence counts users and topic members', async () => {
      const presence = await sandbox.invokeOk<Record<string, unknown>>('presence', {
        userIds: [user('alice'), user('bob'), user('carol')],
        topic,
      });
      expect(presence).toEqual({
        users: {
          [user('alice')]: { online: true, connections: 2 },
          [user('bob')]: { online: true, connections: 1 },
          [user('carol')]: { online: false, connections: 0 },
        },
        topic: { name: topic, members: 7 },
      });
    });

    it('kick closes the connections through the management API (DELETE)', async () => {
      // Act
      const result = await sandbox.invokeOk<Record<string, unknown>>('kick', {
        userId: user('bob'),
      });
      // Assess
      expect(result).toEqual({ connections: 1, closed: 1, gone: 0, failed: 0 });
      expect(mgmt.deletes).toContain(bob);
      expect(mgmt.signatureFailures).toEqual([]);
    });

    it('$disconnect removes the connection', async () => {
      // Act
      const reply = await sandbox.invokeOk<Reply>('disconnect', disconnectEvent(alice2));
      mgmt.drop(alice2);
      const presence = await sandbox.invokeOk<Record<string, unknown>>('presence', {
        userIds: [user('alice'), user('bob')],
      });
      // Assess
      expect(reply.statusCode).toBe(200);
      expect(presence).toEqual({
        users: {
          [user('alice')]: { online: true, connections: 1 },
          [user('bob')]: { online: false, connections: 0 },
        },
      });
    });

    it('the events function sends every lifecycle event with signed PutEvents', async () => {
      // Act: a drain now (scheduled every minute in AWS).
      const result = await sandbox.invokeOk<{ sent: number; failed: number }>('events', {
        once: true,
      });
      // Assess: what this run's connections did, each once, as EventBridge events.
      expect(result.failed).toBe(0);
      expect(eventBridge.signatureFailures).toEqual([]);
      expect(eventBridge.bus.refused).toEqual([]);
      const of = (id: string) =>
        eventBridge.events
          .filter((e) => e.detail['connectionId'] === id)
          .map((e) => [e.detailType, e.detail['reason'] ?? e.detail['topic'] ?? '']);
      expect(of(alice1)).toEqual(
        expect.arrayContaining([
          ['pushwire.connected', ''],
          ['pushwire.subscribed', topic],
        ]),
      );
      expect(of(bob)).toEqual([
        ['pushwire.connected', ''],
        ['pushwire.disconnected', 'kick'],
      ]);
      expect(of(alice2)).toContainEqual(['pushwire.disconnected', 'client_close']);
      expect(eventBridge.events.some((e) => e.detail['code'] === 'unauthorized')).toBe(true);
      for (const event of eventBridge.events) {
        expect(event).toMatchObject({ source: 'pushwire', bus: 'default' });
        expect(eventDetailErrors(event.detailType.replace('pushwire.', ''), event.detail)).toEqual(
          [],
        );
        expect(event.detail).toMatchObject({ stage: STAGE, eventId: expect.any(String) });
      }
    });

    it('loaded nothing but Node built-ins, and nothing failed or crashed', () => {
      expect(sandbox.foreignModules).toEqual([]);
      expect(sandbox.problems).toEqual([]);
      expect(sandbox.output()).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND/);
      expect(mgmt.signatureFailures).toEqual([]);
      expect(invokeApi.signatureFailures).toEqual([]);
      // The secrets came from SSM, signed (issue 9), and nowhere else.
      expect(ssm.signatureFailures).toEqual([]);
      expect(new Set(ssm.reads)).toEqual(
        new Set(['/pushwire/prod/redis-url', '/pushwire/prod/jwt-secret']),
      );
      expect(sandbox.output()).not.toContain(JWT_SECRET);
      // Every function ran at least once, cold.
      expect(new Set(sandbox.coldStarts.map((c) => c.functionKey))).toEqual(
        new Set(packaged.functions.keys()),
      );
    });
  },
);
