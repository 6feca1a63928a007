import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta } from 'fossil-delta';
import { Redis } from 'ioredis';
import JSZip from 'jszip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_LIMITS } from '../../bench/bundles.js';
import { series } from '../../bench/delta-doc.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { clientFrameErrors, httpExchangeErrors, serverFrameErrors } from '../helpers/contract.js';
import { eventDetailErrors } from '../helpers/events-schema.js';
import { SnsStandIn } from '../helpers/sns-stand-in.js';
import { resolver, type StackFacts, StackIam } from './iam.js';
import { LambdaSandbox, type Packaged, packageService } from './lambda-sandbox.js';
import { NODE_VERSIONS, type NodeMajor, nodeBinary } from './node-runtimes.js';
import {
  ACCOUNT_ID,
  EventBridgeStandIn,
  Keyring,
  LambdaInvokeStandIn,
  ManagementApiStandIn,
  type RequestLog,
  SecretsManagerStandIn,
  SqsStandIn,
  SsmStandIn,
} from './stand-ins.js';

/**
 * The packaged zips (`osls package`), run as Lambda runs them: each unzipped
 * alone with no node_modules above it, under Node 22 and Node 24, with only
 * the environment Lambda gives a function. The AWS APIs are local stand-ins
 * that check every request's SigV4 signature and record it as IAM sees it
 * (action, resource ARN built from the request, condition keys); each is
 * decided by the packaged template's own policies for the role of the
 * function that signed it (test/sandbox/iam.ts, iam-simulate), and refused
 * (403) when they do not allow it. Two stacks are packaged from this source,
 * in two stages and two regions, each naming the other in WS_PEERS, and
 * share one private Redis. It cannot prove VPC networking or the real API
 * Gateway (docs/deploying.md).
 */

const STACK_A: StackFacts = { name: 'a', stage: 'prod', region: 'eu-west-1', apiId: 'aaaa1111aa' };
const STACK_B: StackFacts = {
  name: 'b',
  stage: 'canary',
  region: 'us-east-1',
  apiId: 'bbbb2222bb',
};
const FANOUT_CHUNK = 3;
const DELTA_TOPICS = 'doc:*';

/** One stack: its stand-ins, its package, its IAM, the sandbox running it now. */
interface Stack {
  facts: StackFacts;
  /** Read by the functions from Secrets Manager, never given to them by value. */
  jwtSecret: string;
  jwtSecretArn: string;
  redisUrlParameter: string;
  domain: string;
  mgmt: ManagementApiStandIn;
  ssm: SsmStandIn;
  secrets: SecretsManagerStandIn;
  invokeApi: LambdaInvokeStandIn;
  /** Where its `events` relay sends lifecycle events (EVENTS=all). */
  eventBridge: EventBridgeStandIn;
  /** Where acknowledged publishes schedule their timeouts (issue 18). */
  sqs: SqsStandIn;
  /** EVENTS_BUS: A the default bus, B a bus of its own (the role names it). */
  eventsBus: string;
  /** SNS mobile push (issue 18): one FCM platform application. */
  sns: SnsStandIn;
  fcmApplication: string;
  /** The VAPID private key's SSM parameter (only the push-sending roles may read it). */
  vapidParameter: string;
  packaged: Packaged;
  iam: StackIam;
  current?: LambdaSandbox | undefined;
}

let redisServer: RedisServer;
let redis: Redis;
const keyring = new Keyring();
/** Every AWS request any function of either stack made, as IAM decided it. */
const log: RequestLog = { requests: [] };
/** `stack|role|policy|statement|action|resource` of every grant some request used. */
const used = new Set<string>();
const stacks = new Map<string, Stack>();
const stackOf = (name: string) => stacks.get(name) as Stack;
let A: Stack;
let B: Stack;
/** Removed after the run, packaged or not. */
const packageDirs: string[] = [];
/** Stopped after the run, packaged or not. */
const started: Awaited<ReturnType<typeof startStandIns>>[] = [];

const grantKey = (
  stack: string,
  g: { role: string; policy: string; statement: string; action: string; resource: string },
) => [stack, g.role, g.policy, g.statement, g.action, g.resource].join('|');

log.authorize = async (request) => {
  const stack = stackOf(request.stack);
  const role = stack.iam.roleOf.get(request.functionKey) as string;
  const decision = await stack.iam.decide(role, request);
  for (const grant of decision.grants) used.add(grantKey(request.stack, grant));
  return decision.allowed;
};

async function startStandIns(facts: StackFacts) {
  const options = { region: facts.region, keyring, log };
  const jwtSecret = `sandbox-secret-of-at-least-32-bytes-${facts.name}!`;
  const jwtSecretArn = `arn:aws:secretsmanager:${facts.region}:${ACCOUNT_ID}:secret:pushwire/${facts.stage}/jwt-secret-Ab12Cd`;
  const redisUrlParameter = `/pushwire/${facts.stage}/redis-url`;
  const vapidParameter = `/pushwire-push/${facts.stage}/vapid-private-key`;
  const fcmApplication = `arn:aws:sns:${facts.region}:${ACCOUNT_ID}:app/GCM/pushwire-${facts.stage}`;
  return {
    vapidParameter,
    fcmApplication,
    // Every SNS request signed by a session of the keyring and decided by the role's IAM.
    sns: await SnsStandIn.start({
      region: facts.region,
      secretFor: (id) => keyring.lookup(id)?.secretAccessKey,
      sessionToken: (id) => keyring.lookup(id)?.sessionToken,
      applications: [fcmApplication],
      authorize: async (check, action, resource) => {
        const session = keyring.lookup(check.accessKeyId ?? '');
        if (!session) return false;
        const request = {
          stack: session.stack,
          functionKey: session.functionKey,
          action,
          // As IAM sees them: SNS's platform endpoint actions (and Publish to
          // an endpoint) take no resource (the Service Authorization Reference).
          resource: resource.includes(':topic') ? resource : '*',
          context: { 'aws:RequestedRegion': facts.region, 'aws:PrincipalAccount': ACCOUNT_ID },
        };
        const allowed = (await log.authorize?.(request)) ?? true;
        log.requests.push({ ...request, allowed });
        return allowed;
      },
    }),
    facts,
    jwtSecret,
    jwtSecretArn,
    redisUrlParameter,
    domain: `${facts.apiId}.execute-api.${facts.region}.amazonaws.com`,
    eventsBus: facts.name === 'a' ? 'default' : `pushwire-${facts.stage}-lifecycle`,
    eventBridge: await EventBridgeStandIn.start(options),
    sqs: await SqsStandIn.start(options),
    mgmt: await ManagementApiStandIn.start({ ...options, stage: facts.stage, apiId: facts.apiId }),
    ssm: await SsmStandIn.start(options, {
      [redisUrlParameter]: redisServer.url,
      [vapidParameter]: DEV_VAPID.VAPID_PRIVATE_KEY,
    }),
    secrets: await SecretsManagerStandIn.start(options, { [jwtSecretArn]: jwtSecret }),
    invokeApi: await LambdaInvokeStandIn.start(options, async (name, payload) => {
      // The deployment's publish hook (PUBLISH_HOOK_FUNCTION): not ours, so a stand-in.
      if (name === hookName(facts)) return { ok: true, result: exampleHook(payload) };
      const sandbox = stackOf(facts.name).current;
      if (!sandbox) throw new Error('no sandbox running');
      const outcome = await sandbox.invoke(name, payload);
      return outcome.ok ? outcome : { ok: false, error: outcome.error };
    }),
  };
}

/** The publish hook each stack names (issue 16): its own function, outside pushwire. */
const hookName = (facts: StackFacts) => `moderate-${facts.stage}`;
/** What that hook answers: refuses `{deny}`, stamps everything else. */
const exampleHook = (request: unknown) => {
  const { data, userId } = request as { data: { deny?: boolean }; userId: string };
  return data?.deny
    ? { allow: false, reason: 'denied by the stand-in' }
    : { allow: true, data: { ...data, checkedFor: userId } };
};

/** `{url}={region}:{api}/{stage}`: the peer's callback URL names no region (as a custom domain). */
const peerEntry = (stack: Omit<Stack, 'packaged' | 'iam'>) =>
  `${stack.mgmt.url}=${stack.facts.region}:${stack.facts.apiId}/${stack.facts.stage}`;

async function packageStack(
  self: Omit<Stack, 'packaged' | 'iam'>,
  peer: Omit<Stack, 'packaged' | 'iam'>,
): Promise<Stack> {
  const { facts } = self;
  const dir = mkdtempSync(join(tmpdir(), `pushwire-package-${facts.name}-`));
  packageDirs.push(dir);
  // The shell a deploy would package from: these end up in the template.
  const packaged = await packageService(
    dir,
    facts.stage,
    facts.region,
    {
      // Secrets by parameter (issue 9): the Redis URL in SSM, the JWT secret
      // in Secrets Manager, so every role reads from both. No TLS here.
      JWT_SECRET_PARAMETER: self.jwtSecretArn,
      REDIS_ALLOW_PLAINTEXT: 'true',
      AWS_ENDPOINT_URL_SSM: self.ssm.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: self.secrets.url,
      WS_CALLBACK_URL: self.mgmt.url,
      LAMBDA_ENDPOINT: self.invokeApi.url,
      FANOUT_CHUNK: String(FANOUT_CHUNK),
      FANOUT_PARALLEL_CHUNKS: '2',
      WS_PEERS: peerEntry(peer),
      PUBLISH_HOOK_FUNCTION: hookName(facts),
      // Every lifecycle event, relayed by the `events` zip to the stand-in bus.
      EVENTS: 'all',
      EVENTS_BUS: self.eventsBus,
      // Joins and leaves on the runs' topics: $default and $disconnect invoke presenceEvents.
      PRESENCE_EVENTS_TOPICS: 'news-*,both-stacks',
      // Delta topics (issue 17): a subscriber may ask for fossil deltas on these.
      DELTA_TOPICS: DELTA_TOPICS,
      AWS_ENDPOINT_URL_EVENTBRIDGE: self.eventBridge.url,
      AWS_ENDPOINT_URL_SQS: self.sqs.url,
      // Push (issue 18): the VAPID private key by parameter, SNS mobile push for FCM.
      VAPID_PUBLIC_KEY: DEV_VAPID.VAPID_PUBLIC_KEY,
      VAPID_PRIVATE_KEY_PARAMETER: self.vapidParameter,
      VAPID_SUBJECT: 'mailto:ops@example.com',
      SNS_FCM_APPLICATION_ARN: self.fcmApplication,
      AWS_ENDPOINT_URL_SNS: self.sns.url,
    },
    resolver(facts),
  );
  return { ...self, packaged, iam: new StackIam(facts, packaged) };
}

beforeAll(async () => {
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  const [a, b] = await Promise.all([startStandIns(STACK_A), startStandIns(STACK_B)]);
  started.push(a, b);
  // Both stacks from the same source, side by side (each its own build folder).
  [A, B] = await Promise.all([packageStack(a, b), packageStack(b, a)]);
  stacks.set('a', A);
  stacks.set('b', B);
  // Both runtimes up front (fetched through npm once, then cached).
  await Promise.all(Object.keys(NODE_VERSIONS).map((m) => nodeBinary(Number(m) as NodeMajor)));
}, 300_000);

afterAll(async () => {
  for (const stack of [A, B]) await stack?.current?.stop();
  for (const stack of started) {
    await stack.invokeApi.stop();
    await stack.mgmt.stop();
    await stack.ssm.stop();
    await stack.secrets.stop();
    await stack.eventBridge.stop();
    await stack.sqs.stop();
    await stack.sns.stop();
  }
  for (const dir of packageDirs) rmSync(dir, { recursive: true, force: true });
  await redis?.quit();
  await redisServer?.stop();
});

/**
 * The push path (issue 18) on one stack: an app registers its FCM token over
 * the socket ($default invokes `devices`: CreatePlatformEndpoint,
 * SetEndpointAttributes), a push is sent (the VAPID key read from SSM, SNS
 * Publish), the endpoint SNS then reports disabled is removed
 * (DeleteEndpoint), and a service registers and removes a token through the
 * HTTP API (the `http` role's own SNS calls).
 */
async function exercisePush(
  stack: Stack,
  sandbox: LambdaSandbox,
  connectionId: string,
  userId: string,
): Promise<void> {
  const token = `fcm-${stack.facts.name}-${userId}:APA91b`;
  const registered = await sandbox.invokeOk<Reply>(
    'default',
    frameEvent(stack, connectionId, {
      action: 'push_register',
      mobile: { platform: 'fcm', token },
      ref: 'push',
    }),
  );
  expect(
    replyFrame(registered),
    JSON.stringify([
      registered,
      sandbox.problems,
      stack.invokeApi.ran.slice(-2),
      log.requests.filter((r) => !r.allowed).slice(-3),
      sandbox.output().slice(-1500),
    ]),
  ).toMatchObject({
    type: 'push_registered',
    ref: 'push',
  });
  const endpoint = stack.sns.endpointFor(token);
  expect(endpoint).toMatchObject({ applicationArn: stack.fcmApplication, customUserData: userId });

  const pushed = await sandbox.invokeOk('devices', {
    action: 'push',
    userId,
    notify: { title: 'ring', body: 'from the sandbox' },
  });
  expect(pushed).toMatchObject({ devices: 1, sent: 1, failed: 0, removed: 0 });
  expect(stack.sns.published.at(-1)).toMatchObject({
    targetArn: endpoint?.arn,
    platformKey: 'GCM',
  });
  expect(stack.ssm.reads).toContain(stack.vapidParameter);

  stack.sns.disable(endpoint?.arn ?? '');
  const pruned = await sandbox.invokeOk('devices', {
    action: 'push',
    userId,
    notify: { title: 'x' },
  });
  expect(pruned).toMatchObject({ devices: 1, sent: 0, removed: 1 });
  expect(stack.sns.endpoints.has(endpoint?.arn ?? '')).toBe(false);

  const rest = (body: unknown) => ({
    resource: '/devices',
    path: '/devices',
    httpMethod: 'POST',
    headers: { 'Content-Type': 'application/json' },
    requestContext: {
      resourcePath: '/devices',
      httpMethod: 'POST',
      stage: stack.facts.stage,
      identity: { userArn: `arn:aws:iam::${ACCOUNT_ID}:role/orders` },
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  });
  const mobile = { platform: 'fcm', token: `${token}-http` };
  const viaHttp = await sandbox.invokeOk<Reply>(
    'http',
    rest({ action: 'register', userId, mobile }),
  );
  expect(viaHttp.statusCode).toBe(200);
  const removed = await sandbox.invokeOk<Reply>('http', rest({ action: 'remove', userId, mobile }));
  expect(replyFrame(removed)).toMatchObject({ removed: true });
  expect(stack.sns.endpointFor(mobile.token)).toBeUndefined();
  expect(stack.sns.signatureFailures).toEqual([]);
  expect(stack.sns.malformed).toEqual([]);
}

/** A sandbox running `stack`'s zips on `major`, each function with its own session of its role. */
async function startSandbox(stack: Stack, major: NodeMajor, root: string): Promise<LambdaSandbox> {
  const sandbox = await LambdaSandbox.create(
    {
      root,
      node: await nodeBinary(major),
      region: stack.facts.region,
      credentials: (fn) => keyring.issue(stack.facts.name, fn.key),
    },
    stack.packaged,
  );
  stack.current = sandbox;
  return sandbox;
}

it('packages every function for a Node runtime the sandbox runs, its environment in plain strings', () => {
  const keys = [...A.packaged.functions.keys()].sort();
  expect(keys).toEqual([
    'ack',
    'ackTimeout',
    'connect',
    'default',
    'deliver',
    'devices',
    'disconnect',
    'events',
    'http',
    'kick',
    'presence',
    'presenceEvents',
    'publish',
    'queue',
    'status',
  ]);
  for (const stack of [A, B]) {
    expect([...stack.packaged.functions.keys()].sort()).toEqual(keys);
    for (const fn of stack.packaged.functions.values()) {
      expect(Object.keys(NODE_VERSIONS).map((m) => `nodejs${m}.x`)).toContain(fn.runtime);
      expect(fn.environment['WS_CALLBACK_URL']).toBe(stack.mgmt.url);
      expect(fn.environment['FANOUT_CHUNK']).toBe(String(FANOUT_CHUNK));
      expect(fn.environment['EVENTS']).toBe('all');
      expect(fn.environment['EVENTS_BUS']).toBe(stack.eventsBus);
      // The template names this API's own endpoint (deliver's allow-list).
      expect(fn.environment['WS_API_ENDPOINT']).toBe(
        `https://${stack.domain}/${stack.facts.stage}`,
      );
    }
  }
});

it('keeps each zip within its bundle size target (one .cjs file, 1 KB = 1,000 bytes)', async () => {
  for (const fn of A.packaged.functions.values()) {
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

function requestContext(stack: Stack, connectionId: string, routeKey: string, eventType: string) {
  const now = Date.now();
  return {
    routeKey,
    eventType,
    messageDirection: 'IN',
    extendedRequestId: `ext-${now}`,
    requestTime: new Date(now).toUTCString(),
    stage: stack.facts.stage,
    connectedAt: now,
    requestTimeEpoch: now,
    identity: { sourceIp: '203.0.113.7', userAgent: 'sandbox' },
    requestId: `req-${now}`,
    domainName: stack.domain,
    connectionId,
    apiId: stack.facts.apiId,
  };
}

const connectEvent = (stack: Stack, connectionId: string, query: Record<string, string>) => ({
  headers: { Host: stack.domain, 'Sec-WebSocket-Version': '13' },
  multiValueHeaders: { Host: [stack.domain], 'Sec-WebSocket-Version': ['13'] },
  queryStringParameters: query,
  multiValueQueryStringParameters: Object.fromEntries(
    Object.entries(query).map(([k, v]) => [k, [v]]),
  ),
  requestContext: requestContext(stack, connectionId, '$connect', 'CONNECT'),
  isBase64Encoded: false,
});

const frameEvent = (stack: Stack, connectionId: string, frame: unknown) => ({
  requestContext: {
    ...requestContext(stack, connectionId, '$default', 'MESSAGE'),
    messageId: `msg-${Date.now()}`,
  },
  body: JSON.stringify(frame),
  isBase64Encoded: false,
});

const disconnectEvent = (stack: Stack, connectionId: string) => ({
  headers: { Host: stack.domain },
  multiValueHeaders: { Host: [stack.domain] },
  requestContext: {
    ...requestContext(stack, connectionId, '$disconnect', 'DISCONNECT'),
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
      const token = await devToken(userId, { secret: A.jwtSecret, topics });
      const reply = await sandbox.invokeOk<Reply>(
        'connect',
        connectEvent(A, connectionId, { token }),
      );
      expect(reply.statusCode).toBe(200);
      A.mgmt.open(connectionId);
      return connectionId;
    }
    const send = (connectionId: string, frame: unknown) =>
      sandbox.invokeOk<Reply>('default', frameEvent(A, connectionId, frame));

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), `pushwire-sandbox-node${major}-`));
      sandbox = await startSandbox(A, major, root);
    }, 120_000);

    afterAll(async () => {
      await sandbox?.stop();
      if (A.current === sandbox) A.current = undefined;
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
    let refusedId: string;
    let stray: string;
    let gone: string;
    const members: string[] = [];

    it('$connect takes a token and refuses a bad one with 401', async () => {
      alice1 = await connect(user('alice'), [topic]);
      alice2 = await connect(user('alice'), [topic]);
      bob = await connect(user('bob'));
      refusedId = newConnectionId();
      const refused = await sandbox.invokeOk<Reply>(
        'connect',
        connectEvent(A, refusedId, { token: 'not.a.token' }),
      );
      expect(refused.statusCode).toBe(401);
    });

    it('$default answers ping and subscribe, and a first frame posts nothing', async () => {
      // Prepare
      const postsBefore = A.mgmt.posts.length;
      // Act
      const pong = await send(alice1, { action: 'ping' });
      const subscribed = await send(alice1, { action: 'subscribe', topic });
      // Assess
      expect(replyFrame(pong)).toMatchObject({ type: 'pong' });
      expect(replyFrame(subscribed)).toEqual({
        type: 'subscribed',
        topic,
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
      // The cold starts load the signer once, to read their secrets from SSM
      // (issue 9: secrets by parameter); the frames so far signed nothing else.
      const loaded = sandbox.loads
        .filter((l) => l.functionKey === 'connect' || l.functionKey === 'default')
        .flatMap((l) => l.requested);
      expect(loaded).toContain('node:crypto');
      expect(A.ssm.reads.length).toBeGreaterThan(0);
      expect(A.secrets.reads.length).toBeGreaterThan(0);
      expect(A.mgmt.posts.length).toBe(postsBefore);
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
        expect(A.mgmt.postsTo(connectionId)).toEqual([
          { type: 'message', id: first['id'], cursor: firstCursor, data: { n: 1 } },
          {
            type: 'message',
            id: `second-${major}`,
            cursor: secondCursor,
            data: { n: 2, text: 'é ✓' },
          },
        ]);
      expect(A.mgmt.signatureFailures).toEqual([]);
    });

    it('a resume replays what came after its cursor, posted through the gateway', async () => {
      // Prepare
      const before = A.mgmt.postsTo(alice2).length;
      // Act
      const reply = await send(alice2, { action: 'resume', since: firstCursor });
      // Assess
      expect(replyFrame(reply)).toEqual({ type: 'resumed', recovered: true });
      expect(A.mgmt.postsTo(alice2).slice(before)).toEqual([
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

    it('a frame from a connection the registry does not hold is answered and closed (DELETE)', async () => {
      // Prepare: API Gateway holds it, Redis does not (its records expired)
      stray = newConnectionId();
      A.mgmt.open(stray);
      // Act
      await send(stray, { action: 'subscribe', topic });
      // Assess
      expect(A.mgmt.postsTo(stray)).toEqual([
        expect.objectContaining({ type: 'error', code: 'unknown_connection' }),
      ]);
      expect(A.mgmt.deletes).toContain(stray);
    });

    it('publish to a topic larger than a chunk goes through deliver workers, invoked signed', async () => {
      // Prepare: 7 more members, 8 in all: three chunks of at most 3
      for (let i = 0; i < 7; i++) {
        const id = await connect(user(`member${i}`), [topic]);
        members.push(id);
        expect(replyFrame(await send(id, { action: 'subscribe', topic }))).toEqual({
          type: 'subscribed',
          topic,
          cursor: expect.stringMatching(/^\d+-\d+$/),
        });
      }
      const invocationsBefore = A.invokeApi.invocations.length;
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
      const invocations = A.invokeApi.invocations.slice(invocationsBefore);
      expect(invocations).toHaveLength(3);
      for (const invocation of invocations)
        expect(invocation.functionName).toBe(`pushwire-${A.facts.stage}-deliver`);
      expect(A.invokeApi.signatureFailures).toEqual([]);
      for (const connectionId of [alice1, ...members])
        expect(A.mgmt.postsTo(connectionId).at(-1)).toMatchObject({
          type: 'message',
          topic,
          data: { headline: 'chunked' },
        });
      expect(sandbox.coldStarts.some((c) => c.functionKey === 'deliver')).toBe(true);
    });

    it('a message over 128 KB goes to every member as signed part frames that join into it (PW-F6)', async () => {
      // Prepare: ~300 KB of data with multi-byte characters, to the 8 members (three chunks)
      const data = { body: 'é✓😀"'.repeat(30_000) };
      const before = new Map(
        [alice1, ...members].map((c) => [c, A.mgmt.postsTo(c).length] as const),
      );
      // Act
      const result = await sandbox.invokeOk<Record<string, unknown>>('publish', { topic, data });
      // Assess
      expect(result).toMatchObject({ recipients: 8, delivered: 8, failed: 0, chunks: 3 });
      expect(A.mgmt.signatureFailures).toEqual([]);
      for (const connectionId of [alice1, ...members]) {
        const posts = A.mgmt.postsTo(connectionId).slice(before.get(connectionId)) as Record<
          string,
          unknown
        >[];
        expect(posts.length).toBeGreaterThan(1);
        expect(posts.map((p) => [p['type'], p['id'], p['n'], p['of']])).toEqual(
          posts.map((_, n) => ['part', result['id'], n, posts.length]),
        );
        expect(JSON.parse(posts.map((p) => p['data']).join(''))).toEqual({
          type: 'message',
          id: result['id'],
          topic,
          cursor: result['cursor'],
          data,
        });
      }
      const sizes = A.mgmt.posts.map((p) => Buffer.byteLength(p.data));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(128 * 1024);
    });

    it('a batch publish combines each connection’s messages, through deliver workers', async () => {
      const invocationsBefore = A.invokeApi.invocations.length;
      // Act: the topic's 8 members are over FANOUT_CHUNK (streamed); alice's 2 devices are joined.
      const result = await sandbox.invokeOk<{
        messages: { id: string; delivered: number; cursor?: string }[];
        chunks: number;
      }>('publish', {
        messages: [
          { id: `batch-0-${major}`, topic, data: 'b0' },
          { id: `batch-1-${major}`, userId: user('alice'), data: 'b1' },
          { id: `batch-2-${major}`, topic, data: 'b2' },
        ],
      });
      // Assess
      expect(result.messages.map((m) => m.delivered)).toEqual([8, 2, 8]);
      expect(result.chunks).toBe(4);
      const invocations = A.invokeApi.invocations.slice(invocationsBefore);
      expect(invocations.map((i) => i.functionName)).toEqual(
        Array(4).fill(`pushwire-${A.facts.stage}-deliver`),
      );
      const [m0, m1, m2] = result.messages;
      const topicFrame = {
        type: 'batch',
        messages: [
          { type: 'message', id: m0?.id, topic, cursor: m0?.cursor, data: 'b0' },
          { type: 'message', id: m2?.id, topic, cursor: m2?.cursor, data: 'b2' },
        ],
      };
      const userFrame = { type: 'message', id: m1?.id, cursor: m1?.cursor, data: 'b1' };
      for (const connectionId of members)
        expect(A.mgmt.postsTo(connectionId).at(-1)).toEqual(topicFrame);
      expect(A.mgmt.postsTo(alice1).slice(-2)).toEqual(
        expect.arrayContaining([topicFrame, userFrame]),
      );
      expect(A.mgmt.postsTo(alice2).at(-1)).toEqual(userFrame);
      expect(A.invokeApi.signatureFailures).toEqual([]);
    });

    describe('delta topics (issue 17, PW-D)', () => {
      it('a fossil subscriber gets the second document as a delta that applies to the first, directly and through deliver workers; others get it whole', async () => {
        // Prepare: the packaged environment names the delta topics.
        for (const fn of A.packaged.functions.values())
          expect(fn.environment['DELTA_TOPICS']).toBe(DELTA_TOPICS);
        const doc = `doc:sandbox-node${major}`;
        // Three versions of a ~20 KB document, each changing a few rows; multi-byte text
        // so the delta's one-character-per-byte encoding is exercised (PW-D3).
        const versions = series(3, 160).map((text) => ({
          ...(JSON.parse(text) as object),
          title: 'Catalogue é ✓ 😀',
        }));
        expect(Buffer.byteLength(JSON.stringify(versions[0]))).toBeGreaterThan(18_000);
        const frames: unknown[] = [];
        /** Subscribes over the packaged $default; every frame checked against the contract. */
        const subscribe = async (name: string, delta: boolean) => {
          const id = await connect(user(name), [doc]);
          const frame = { action: 'subscribe', topic: doc, ...(delta ? { delta: 'fossil' } : {}) };
          expect(clientFrameErrors(frame)).toBeUndefined();
          const reply = replyFrame(await send(id, frame));
          frames.push(reply);
          expect(reply).toEqual({
            type: 'subscribed',
            topic: doc,
            cursor: expect.stringMatching(/^\d+-\d+$/),
            ...(delta ? { delta: 'fossil' } : {}),
          });
          return id;
        };
        const fossil = await subscribe('fossil', true);
        const whole = await subscribe('whole', false);
        const publish = async (data: unknown, via: 'publish' | 'deliver') => {
          const invocationsBefore = A.invokeApi.invocations.length;
          const request = { topic: doc, data };
          const result = await sandbox.invokeOk<Record<string, unknown>>('publish', request);
          expect(httpExchangeErrors('publish', request, 200, result)).toBeUndefined();
          expect(result).toMatchObject({
            delivered: result['recipients'],
            failed: 0,
            stored: true,
          });
          const invoked = A.invokeApi.invocations.slice(invocationsBefore);
          if (via === 'publish') expect(invoked).toEqual([]);
          else {
            expect(invoked.length).toBeGreaterThan(0);
            for (const i of invoked)
              expect(i.functionName).toBe(`pushwire-${A.facts.stage}-deliver`);
          }
          return result;
        };
        const wholeFrame = (result: Record<string, unknown>, data: unknown) => ({
          type: 'message',
          id: result['id'],
          topic: doc,
          cursor: result['cursor'],
          data,
        });
        /** The delta frame, checked, applied as client/delta.ts applies it (UTF-8 bytes, one character per byte). */
        const applied = (frame: Record<string, unknown>, base: unknown) => {
          const bytes = Buffer.from(frame['data'] as string, 'latin1');
          expect(bytes.toString('latin1')).toBe(frame['data']);
          const out = applyDelta(Buffer.from(JSON.stringify(base)), bytes, {
            verifyChecksum: true,
          });
          return JSON.parse(Buffer.from(out).toString('utf8')) as unknown;
        };

        // Act 1: directly from `publish` (2 members, within FANOUT_CHUNK).
        const first = await publish(versions[0], 'publish');
        const second = await publish(versions[1], 'publish');
        // Assess 1: the first whole to both; the second a delta to the fossil subscriber only.
        const fossilPosts = A.mgmt.postsTo(fossil) as Record<string, unknown>[];
        const wholePosts = A.mgmt.postsTo(whole) as Record<string, unknown>[];
        expect(fossilPosts[0]).toEqual(wholeFrame(first, versions[0]));
        expect(fossilPosts[1]).toEqual({
          type: 'message',
          id: second['id'],
          topic: doc,
          cursor: second['cursor'],
          delta: { base: first['cursor'] },
          data: expect.any(String),
        });
        const deltaBytes = Buffer.byteLength(JSON.stringify(fossilPosts[1]));
        expect(deltaBytes).toBeLessThan(Buffer.byteLength(JSON.stringify(versions[1])) / 4);
        expect(applied(fossilPosts[1] as Record<string, unknown>, versions[0])).toEqual(
          versions[1],
        );
        expect(wholePosts).toEqual([
          wholeFrame(first, versions[0]),
          wholeFrame(second, versions[1]),
        ]);

        // Act 2: two more whole subscribers: 4 members, over FANOUT_CHUNK, so through `deliver`.
        const others = [await subscribe('whole2', false), await subscribe('whole3', false)];
        const third = await publish(versions[2], 'deliver');
        // Assess 2
        expect(third).toMatchObject({ recipients: 4, chunks: 2 });
        const fossilThird = A.mgmt.postsTo(fossil).slice(2) as Record<string, unknown>[];
        expect(fossilThird).toEqual([
          {
            type: 'message',
            id: third['id'],
            topic: doc,
            cursor: third['cursor'],
            delta: { base: second['cursor'] },
            data: expect.any(String),
          },
        ]);
        expect(applied(fossilThird[0] as Record<string, unknown>, versions[1])).toEqual(
          versions[2],
        );
        for (const id of [whole, ...others])
          expect(A.mgmt.postsTo(id).at(-1)).toEqual(wholeFrame(third, versions[2]));
        for (const id of [fossil, whole, ...others]) frames.push(...A.mgmt.postsTo(id));
        for (const frame of frames)
          expect(serverFrameErrors(frame), JSON.stringify(frame).slice(0, 200)).toBeUndefined();
        expect(A.mgmt.signatureFailures).toEqual([]);
        expect(A.invokeApi.signatureFailures).toEqual([]);
      });
    });

    it('a connection that went away is pruned at the next publish (410)', async () => {
      // Prepare
      gone = members.pop() as string;
      A.mgmt.drop(gone);
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
          stage: A.facts.stage,
          identity: { userArn: `arn:aws:iam::${ACCOUNT_ID}:role/orders` },
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
      expect(A.mgmt.postsTo(alice1).at(-1)).toMatchObject({
        id: `http-${major}`,
        data: 'via http',
      });
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
        eventSourceARN: `arn:aws:sqs:${A.facts.region}:${ACCOUNT_ID}:pushwire-${A.facts.stage}-publish`,
        awsRegion: A.facts.region,
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
      expect(A.mgmt.postsTo(alice1).at(-1)).toMatchObject({ id: `q-${major}`, data: 'via sqs' });
    });

    it('an acknowledged message: its timeout sent to SQS, acked by the ack route, ackTimeout, status', async () => {
      // Prepare
      const userId = user('acker');
      const device = await connect(userId);
      const before = A.sqs.messages.length;
      // Act
      await sandbox.invokeOk('publish', {
        id: `ack-${major}`,
        userId,
        data: 'ring',
        ack: { timeoutSeconds: 1, notify: { title: 'ring' }, dismissOthers: true },
      });
      const acked = await sandbox.invokeOk<Reply>(
        'ack',
        frameEvent(A, device, { action: 'ack', ids: [`ack-${major}`, 'not-mine'] }),
      );
      const scheduled = A.sqs.messages.slice(before);
      const timeout = await sandbox.invokeOk<{ batchItemFailures: unknown[] }>('ackTimeout', {
        Records: [
          {
            messageId: `t-${major}`,
            receiptHandle: `AQEB-t-${major}`,
            body: scheduled[0]?.body,
            attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
            messageAttributes: {},
            md5OfBody: '0',
            eventSource: 'aws:sqs',
            eventSourceARN: scheduled[0]?.queueArn,
            awsRegion: A.facts.region,
          },
        ],
      });
      const status = await sandbox.invokeOk('status', { id: `ack-${major}`, userId });
      const missing = await sandbox.invokeOk('status', { id: 'never', userId });

      // Assess
      expect(scheduled.map((m) => [m.functionKey, m.delaySeconds])).toEqual([['publish', 1]]);
      expect(A.mgmt.postsTo(device).at(-1)).toMatchObject({ id: `ack-${major}`, ack: true });
      expect(replyFrame(acked)).toEqual({
        type: 'acked',
        ids: [`ack-${major}`],
        refused: ['not-mine'],
      });
      expect(timeout).toEqual({ batchItemFailures: [] });
      expect(status).toMatchObject({ state: 'acked', firstAck: { connectionId: device } });
      expect(missing).toMatchObject({ error: { code: 'not_found' } });
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
      expect(A.mgmt.deletes).toContain(bob);
      expect(A.mgmt.signatureFailures).toEqual([]);
    });

    it('push: a token registered over the socket, pushed through SNS, pruned when disabled; /devices over HTTP', async () => {
      await exercisePush(A, sandbox, alice1, user('alice'));
    });

    it('$disconnect removes the connection', async () => {
      // Act
      const reply = await sandbox.invokeOk<Reply>('disconnect', disconnectEvent(A, alice2));
      A.mgmt.drop(alice2);
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

    it('joins and leaves: $default and $disconnect invoke presenceEvents (Event), which posts them', async () => {
      // Prepare: zed joins the topic and leaves it.
      const zed = await connect(user('zed'), [topic]);
      expect(replyFrame(await send(zed, { action: 'subscribe', topic }))).toMatchObject({
        type: 'subscribed',
      });
      expect(
        (await sandbox.invokeOk<Reply>('disconnect', disconnectEvent(A, zed))).statusCode,
      ).toBe(200);
      A.mgmt.drop(zed);
      const queued = A.invokeApi.queued.map((q) => q.functionName);
      expect(queued.length).toBeGreaterThanOrEqual(2);
      for (const name of queued) expect(name).toBe(`pushwire-${A.facts.stage}-presenceEvents`);
      // Act: Lambda's queue runs them.
      await A.invokeApi.runQueued();
      // Assess: alice1 (on the topic) was told, in order.
      const told = A.mgmt
        .postsTo(alice1)
        .filter((f) => (f as { userId?: string }).userId === user('zed'));
      expect(told).toEqual([
        { type: 'join', topic, userId: user('zed') },
        { type: 'leave', topic, userId: user('zed') },
      ]);
      expect(A.invokeApi.signatureFailures).toEqual([]);
      // And a page of members, through the service API.
      const page = await sandbox.invokeOk<Record<string, unknown>>('presence', {
        topic,
        members: true,
        limit: 1,
      });
      expect(page).toMatchObject({
        members: [{ userId: expect.any(String) }],
        next: expect.any(String),
      });
    });

    it('the events function sends every lifecycle event of the run with signed PutEvents', async () => {
      // Prepare
      const before = A.eventBridge.events.length;
      // Act: a drain now (scheduled every minute in AWS).
      const result = await sandbox.invokeOk<{ sent: number; failed: number }>('events', {
        once: true,
      });
      // Assess: what this run's connections did, each once, as EventBridge events.
      const sent = A.eventBridge.events.slice(before);
      expect(result).toEqual({ sent: sent.length, failed: 0 });
      expect(A.eventBridge.signatureFailures).toEqual([]);
      expect(A.eventBridge.malformed).toEqual([]);
      // Presence events come when presenceEvents fans them out (checked below).
      const isPresence = (e: { detailType: string }) =>
        e.detailType.startsWith('pushwire.presence.');
      const of = (id: string) =>
        sent
          .filter((e) => e.detail['connectionId'] === id && !isPresence(e))
          .map((e) => [e.detailType, e.detail['reason'] ?? e.detail['topic'] ?? e.detail['code']]);
      const presenceOf = (id: string) =>
        sent
          .filter((e) => e.detail['connectionId'] === id && isPresence(e))
          .map((e) => [e.detailType, e.detail['topic']]);
      expect(of(alice1)).toEqual([
        ['pushwire.connected', undefined],
        ['pushwire.subscribed', topic],
      ]);
      // alice's first device joined; the pruned member's join and (its last device) leave.
      expect(presenceOf(alice1)).toEqual([['pushwire.presence.join', topic]]);
      expect(presenceOf(gone)).toEqual([
        ['pushwire.presence.join', topic],
        ['pushwire.presence.leave', topic],
      ]);
      expect(of(alice2)).toEqual([
        ['pushwire.connected', undefined],
        ['pushwire.disconnected', 'client_close'],
      ]);
      expect(of(bob)).toEqual([
        ['pushwire.connected', undefined],
        ['pushwire.disconnected', 'kick'],
      ]);
      expect(of(gone)).toEqual([
        ['pushwire.connected', undefined],
        ['pushwire.subscribed', topic],
        ['pushwire.disconnected', 'gone'],
      ]);
      expect(of(refusedId)).toEqual([['pushwire.refused', 'unauthorized']]);
      expect(of(stray)).toEqual([['pushwire.refused', 'unknown_connection']]);
      expect(new Set(sent.map((e) => e.detail['eventId'])).size).toBe(sent.length);
      for (const event of sent) {
        expect(event).toMatchObject({
          stack: 'a',
          functionKey: 'events',
          source: 'pushwire',
          bus: 'default',
          busArn: `arn:aws:events:${A.facts.region}:${ACCOUNT_ID}:event-bus/default`,
        });
        expect(event.detail).toMatchObject({ stage: A.facts.stage, eventId: expect.any(String) });
        expect(
          eventDetailErrors(event.detailType.replace('pushwire.', ''), event.detail),
          JSON.stringify(event.detail),
        ).toEqual([]);
      }
    });

    it('loaded nothing but Node built-ins, and nothing failed or crashed', () => {
      expect(sandbox.foreignModules).toEqual([]);
      expect(sandbox.problems).toEqual([]);
      expect(sandbox.output()).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND/);
      expect(A.mgmt.signatureFailures).toEqual([]);
      expect(A.invokeApi.signatureFailures).toEqual([]);
      // The secrets came from SSM and Secrets Manager, signed (issue 9), and nowhere else.
      expect(A.ssm.signatureFailures).toEqual([]);
      expect(A.secrets.signatureFailures).toEqual([]);
      expect(A.eventBridge.signatureFailures).toEqual([]);
      // The VAPID private key too: only `devices` reads it, when it sends a push.
      expect(new Set(A.ssm.reads)).toEqual(new Set([A.redisUrlParameter, A.vapidParameter]));
      expect(new Set(A.secrets.reads)).toEqual(new Set([A.jwtSecretArn]));
      expect(sandbox.output()).not.toContain(A.jwtSecret);
      // Every function ran at least once, cold.
      expect(new Set(sandbox.coldStarts.map((c) => c.functionKey))).toEqual(
        new Set(A.packaged.functions.keys()),
      );
    });
  },
);

describe('two stacks (two stages, two regions) sharing one Redis, each naming the other in WS_PEERS', () => {
  const major: NodeMajor = 24;
  const roots: string[] = [];
  const topic = 'both-stacks';
  const users = { carol: 'carol-2stacks', dave: 'dave-2stacks', erin: 'erin-2stacks' };
  /** Connections by stack and user. */
  const heldBy = new Map<string, string[]>();

  async function connect(
    stack: Stack,
    userId: string,
    topics: string[] = [],
    publish: string[] = [],
  ): Promise<string> {
    const connectionId = newConnectionId();
    const token = await devToken(userId, { secret: stack.jwtSecret, topics, publish });
    const sandbox = stack.current as LambdaSandbox;
    const reply = await sandbox.invokeOk<Reply>(
      'connect',
      connectEvent(stack, connectionId, { token }),
    );
    expect(reply.statusCode).toBe(200);
    stack.mgmt.open(connectionId);
    heldBy.set(`${stack.facts.name}:${userId}`, [
      ...(heldBy.get(`${stack.facts.name}:${userId}`) ?? []),
      connectionId,
    ]);
    return connectionId;
  }
  const on = (stack: Stack, userId: string) => heldBy.get(`${stack.facts.name}:${userId}`) ?? [];
  const invoke = <T = Record<string, unknown>>(stack: Stack, fn: string, event: unknown) =>
    (stack.current as LambdaSandbox).invokeOk<T>(fn, event);
  const rest = (stack: Stack, path: string, body: unknown) => ({
    resource: path,
    path,
    httpMethod: 'POST',
    headers: { 'Content-Type': 'application/json' },
    requestContext: {
      resourcePath: path,
      httpMethod: 'POST',
      stage: stack.facts.stage,
      identity: { userArn: `arn:aws:iam::${ACCOUNT_ID}:role/orders` },
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  });

  beforeAll(async () => {
    for (const stack of [A, B]) {
      const root = mkdtempSync(join(tmpdir(), `pushwire-sandbox-${stack.facts.name}-`));
      roots.push(root);
      await startSandbox(stack, major, root);
    }
    // carol on both APIs; 4 members of the topic on each (8: three chunks of 3)
    for (const stack of [A, B]) {
      await connect(stack, users.carol);
      await connect(stack, users.dave);
      await connect(stack, users.erin);
      for (let i = 0; i < 4; i++) {
        const id = await connect(stack, `member${i}-${stack.facts.name}-2stacks`, [topic]);
        const reply = await (stack.current as LambdaSandbox).invokeOk<Reply>(
          'default',
          frameEvent(stack, id, { action: 'subscribe', topic }),
        );
        expect(replyFrame(reply)).toEqual({
          type: 'subscribed',
          topic,
          cursor: expect.stringMatching(/^\d+-\d+$/),
        });
      }
    }
  }, 180_000);

  afterAll(async () => {
    for (const stack of [A, B]) {
      await stack.current?.stop();
      stack.current = undefined;
    }
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  const members = (stack: Stack) =>
    [0, 1, 2, 3].flatMap((i) => on(stack, `member${i}-${stack.facts.name}-2stacks`));

  it.each([
    ['A', 'B'],
    ['B', 'A'],
  ])(
    'a publish handled by %s reaches the user on both APIs (publish, http, queue)',
    async (self, other) => {
      const [here, there] = self === 'A' ? [A, B] : [B, A];
      // Act
      const direct = await invoke(here, 'publish', { userId: users.carol, data: `direct-${self}` });
      const viaHttp = await invoke<Reply>(
        here,
        'http',
        rest(here, '/publish', { userId: users.carol, data: `http-${self}` }),
      );
      const viaQueue = await invoke<{ batchItemFailures: unknown[] }>(here, 'queue', {
        Records: [
          {
            messageId: `q-${self}`,
            receiptHandle: `AQEB-q-${self}`,
            body: JSON.stringify({ userId: users.carol, data: `queue-${self}` }),
            attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
            messageAttributes: {},
            md5OfBody: '0',
            eventSource: 'aws:sqs',
            eventSourceARN: `arn:aws:sqs:${here.facts.region}:${ACCOUNT_ID}:pushwire-${here.facts.stage}-publish`,
            awsRegion: here.facts.region,
          },
        ],
      });
      // Assess: one connection on each API, each post allowed by the poster's role
      expect(direct).toMatchObject({ recipients: 2, delivered: 2, failed: 0 });
      expect(replyFrame(viaHttp)).toMatchObject({ recipients: 2, delivered: 2, failed: 0 });
      expect(viaQueue).toEqual({ batchItemFailures: [] });
      for (const stack of [here, there])
        for (const id of on(stack, users.carol))
          expect(stack.mgmt.postsTo(id).map((m) => (m as { data: unknown }).data)).toEqual(
            expect.arrayContaining([`direct-${self}`, `http-${self}`, `queue-${self}`]),
          );
      expect(other).not.toBe(self);
    },
  );

  it.each([
    ['A', 'B'],
    ['B', 'A'],
  ])(
    'a topic publish handled by %s is chunked to its deliver workers, which post to both APIs',
    async (self) => {
      const here = self === 'A' ? A : B;
      const invocationsBefore = here.invokeApi.invocations.length;
      // Act: through publish, then through the http function
      const direct = await invoke(here, 'publish', { topic, data: `topic-${self}` });
      const viaHttp = await invoke<Reply>(
        here,
        'http',
        rest(here, '/publish', { topic, data: `topic-http-${self}` }),
      );
      // Assess
      expect(direct).toMatchObject({ recipients: 8, delivered: 8, failed: 0, chunks: 3 });
      expect(replyFrame(viaHttp)).toMatchObject({
        recipients: 8,
        delivered: 8,
        failed: 0,
        chunks: 3,
      });
      expect(here.invokeApi.invocations.length - invocationsBefore).toBe(6);
      for (const stack of [A, B])
        for (const id of members(stack))
          expect(stack.mgmt.postsTo(id).map((m) => (m as { data: unknown }).data)).toEqual(
            expect.arrayContaining([`topic-${self}`, `topic-http-${self}`]),
          );
    },
  );

  it.each([['A'], ['B']])(
    "a client publish to %s's $default goes through its publish function and its hook (both invoked signed) to both APIs",
    async (self) => {
      const here = self === 'A' ? A : B;
      const sender = await connect(here, `writer-${self}-2stacks`, [], [topic]);
      const invocationsBefore = here.invokeApi.invocations.length;
      // Act
      const reply = await invoke<Reply>(
        here,
        'default',
        frameEvent(here, sender, {
          action: 'publish',
          topic,
          id: `client-${self}`,
          data: { text: `from ${self}` },
        }),
      );
      const denied = await invoke<Reply>(
        here,
        'default',
        frameEvent(here, sender, { action: 'publish', topic, data: { deny: true } }),
      );
      // Assess
      expect(replyFrame(reply)).toEqual({
        type: 'published',
        topic,
        id: `client-${self}`,
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
      expect(replyFrame(denied)).toMatchObject({ type: 'error', code: 'hook_denied' });
      const invoked = here.invokeApi.invocations
        .slice(invocationsBefore)
        .map((i) => i.functionName);
      expect(invoked.filter((n) => n === `pushwire-${here.facts.stage}-publish`)).toHaveLength(2);
      expect(invoked.filter((n) => n === hookName(here.facts))).toHaveLength(2);
      const expected = { text: `from ${self}`, checkedFor: `writer-${self}-2stacks` };
      for (const stack of [A, B])
        for (const id of members(stack))
          expect(stack.mgmt.postsTo(id)).toContainEqual(
            expect.objectContaining({
              id: `client-${self}`,
              from: `writer-${self}-2stacks`,
              data: expected,
            }),
          );
    },
  );

  it.each([
    ['A', 'dave'],
    ['B', 'erin'],
  ])(
    'kick handled by %s closes the user on both APIs (kick, then http /kick)',
    async (self, who) => {
      const here = self === 'A' ? A : B;
      const userId = users[who as 'dave' | 'erin'];
      // Act
      const kicked = await invoke(here, 'kick', { userId });
      for (const stack of [A, B]) await connect(stack, userId);
      const viaHttp = await invoke<Reply>(here, 'http', rest(here, '/kick', { userId }));
      // Assess
      expect(kicked).toEqual({ connections: 2, closed: 2, gone: 0, failed: 0 });
      expect(replyFrame(viaHttp)).toMatchObject({ connections: 2, closed: 2, failed: 0 });
      for (const stack of [A, B])
        for (const id of on(stack, userId)) expect(stack.mgmt.deletes).toContain(id);
    },
  );

  it.each([['A'], ['B']])(
    'on %s, $default replays and closes only its own connections',
    async (self) => {
      const here = self === 'A' ? A : B;
      const own = on(here, users.carol)[0] as string;
      const stray = newConnectionId();
      here.mgmt.open(stray);
      // Act
      const resumed = await invoke<Reply>(
        here,
        'default',
        frameEvent(here, own, { action: 'resume', since: '0-0' }),
      );
      await invoke<Reply>(here, 'default', frameEvent(here, stray, { action: 'ping' }));
      await invoke<Reply>(here, 'default', frameEvent(here, stray, { action: 'subscribe', topic }));
      // Assess
      expect(replyFrame(resumed)).toMatchObject({ type: 'resumed' });
      expect(here.mgmt.deletes).toContain(stray);
    },
  );

  it.each([['A'], ['B']])(
    'acknowledged messages on %s: publish and http schedule a signed SendMessage; ack, ackTimeout (requeue, push) and status',
    async (self) => {
      const here = self === 'A' ? A : B;
      const userId = `ack-${self}-2stacks`;
      const device = await connect(here, userId);
      const before = here.sqs.messages.length;
      // Act: by publish (PushwirePublishRole) and by the HTTP API (PushwireServiceRole).
      await invoke(here, 'publish', {
        id: `ack-p-${self}`,
        userId,
        data: 1,
        ack: { timeoutSeconds: 1_000, notify: { title: 'hi' } },
      });
      const viaHttp = await invoke<Reply>(
        here,
        'http',
        rest(here, '/publish', {
          id: `ack-h-${self}`,
          userId,
          data: 2,
          ack: { timeoutSeconds: 1 },
        }),
      );
      expect(viaHttp.statusCode).toBe(200);
      const sent = here.sqs.messages.slice(before);
      const queueArn = `arn:aws:sqs:${here.facts.region}:${ACCOUNT_ID}:pushwire-${here.facts.stage}-acks`;
      expect(sent.map((m) => [m.functionKey, m.queueArn, m.delaySeconds])).toEqual([
        ['publish', queueArn, 900],
        ['http', queueArn, 1],
      ]);
      expect(here.mgmt.postsTo(device).at(-1)).toMatchObject({ id: `ack-h-${self}`, ack: true });
      // The ack route's own function.
      const acked = await invoke<Reply>(
        here,
        'ack',
        frameEvent(here, device, { action: 'ack', ids: [`ack-h-${self}`] }),
      );
      expect(replyFrame(acked)).toEqual({ type: 'acked', ids: [`ack-h-${self}`] });
      // ackTimeout as the event source mapping invokes it: the 1,000 s one is
      // early (SQS holds 900 s at most) and goes back for the rest; the acked one pushes nothing.
      const record = (id: string, body: string) => ({
        messageId: id,
        receiptHandle: `AQEB-${id}`,
        body,
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
        messageAttributes: {},
        md5OfBody: '0',
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: here.facts.region,
      });
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const timeouts = await invoke<{ batchItemFailures: unknown[] }>(here, 'ackTimeout', {
        Records: [record('t1', sent[0]?.body as string), record('t2', sent[1]?.body as string)],
      });
      expect(timeouts).toEqual({ batchItemFailures: [] });
      const requeued = here.sqs.messages.slice(before + 2);
      expect(requeued.map((m) => [m.functionKey, m.queueArn])).toEqual([['ackTimeout', queueArn]]);
      expect(requeued[0]?.delaySeconds).toBeGreaterThan(800);
      // Status (the status function, PushwireRegistryRole: Redis only).
      expect(await invoke(here, 'status', { id: `ack-h-${self}`, userId })).toMatchObject({
        state: 'acked',
        firstAck: { connectionId: device },
      });
      expect(await invoke(here, 'status', { id: `ack-p-${self}`, userId })).toMatchObject({
        state: 'pending',
      });
      expect(here.sqs.signatureFailures).toEqual([]);
      expect(here.sqs.malformed).toEqual([]);
    },
  );

  it.each([['A'], ['B']])(
    'an acknowledged message nobody acks on %s: ackTimeout pushes through SNS to a device the devices zip registered, and prunes a disabled one',
    async (self) => {
      // Prepare: two phones registered by a service (the devices function), one later disabled by SNS.
      const here = self === 'A' ? A : B;
      const userId = `ackpush-${self}-2stacks`;
      const queueArn = `arn:aws:sqs:${here.facts.region}:${ACCOUNT_ID}:pushwire-${here.facts.stage}-acks`;
      const tokens = [`fcm-live-${self}:APA91b`, `fcm-dead-${self}:APA91b`];
      for (const token of tokens)
        await invoke(here, 'devices', {
          action: 'register',
          userId,
          mobile: { platform: 'fcm', token },
        });
      const [live, dead] = tokens.map((t) => here.sns.endpointFor(t)?.arn as string);
      expect(live && dead).toBeTruthy();
      here.sns.disable(dead as string);
      const before = here.sqs.messages.length;
      const publishedBefore = here.sns.published.length;
      const requestsBefore = log.requests.length;
      // Act: no connection at all; the timeout comes as the event source mapping delivers it.
      await invoke(here, 'publish', {
        id: `ackpush-${self}`,
        userId,
        data: { call: 1 },
        ack: { timeoutSeconds: 1, notify: { title: 'Missed call', body: 'from Bo' } },
      });
      const [scheduled] = here.sqs.messages.slice(before);
      expect(scheduled).toMatchObject({ functionKey: 'publish', queueArn, delaySeconds: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const timeouts = await invoke<{ batchItemFailures: unknown[] }>(here, 'ackTimeout', {
        Records: [
          {
            messageId: `tp-${self}`,
            receiptHandle: `AQEB-tp-${self}`,
            body: scheduled?.body,
            attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
            messageAttributes: {},
            md5OfBody: '0',
            eventSource: 'aws:sqs',
            eventSourceARN: queueArn,
            awsRegion: here.facts.region,
          },
        ],
      });
      // Assess
      expect(timeouts).toEqual({ batchItemFailures: [] });
      expect(await invoke(here, 'status', { id: `ackpush-${self}`, userId })).toMatchObject({
        state: 'pushed',
        push: { devices: 2, sent: 1, failed: 0, removed: 1 },
      });
      const published = here.sns.published.slice(publishedBefore);
      expect(published.map((p) => [p.targetArn, p.platformKey])).toEqual([[live, 'GCM']]);
      expect(published[0]?.payload).toMatchObject({
        fcmV1Message: {
          message: { notification: { title: 'Missed call', body: 'from Bo' } },
        },
      });
      expect(here.sns.endpoints.has(dead as string)).toBe(false);
      expect(
        (await invoke<{ devices: unknown[] }>(here, 'devices', { action: 'list', userId })).devices,
      ).toHaveLength(1);
      // ackTimeout's own SNS requests: signed (the stand-in recomputed each), allowed to its role.
      const own = log.requests
        .slice(requestsBefore)
        .filter((r) => r.stack === here.facts.name && r.functionKey === 'ackTimeout');
      // SNS platform endpoint actions take no resource (`*`): one Publish to each endpoint, one DeleteEndpoint.
      expect(
        own.map((r) => `${r.action} ${r.resource}`).filter((a) => a.startsWith('sns:')),
      ).toEqual(['sns:Publish *', 'sns:Publish *', 'sns:DeleteEndpoint *']);
      expect(own.filter((r) => !r.allowed)).toEqual([]);
      expect(here.sns.signatureFailures).toEqual([]);
      expect(here.sns.malformed).toEqual([]);
    },
  );

  it('presence and $disconnect on either stack see the connections of both', async () => {
    const presence = await invoke(B, 'presence', { userIds: [users.carol], topic });
    expect(presence).toEqual({
      users: { [users.carol]: { online: true, connections: 2 } },
      topic: { name: topic, members: 8 },
    });
    const id = on(A, users.carol)[0] as string;
    expect((await invoke<Reply>(A, 'disconnect', disconnectEvent(A, id))).statusCode).toBe(200);
    expect(await invoke(B, 'presence', { userIds: [users.carol] })).toEqual({
      users: { [users.carol]: { online: true, connections: 1 } },
    });
  });

  it('each stack relays the events its own functions saw, once, to its own bus and in its stage', async () => {
    // Prepare
    const before = new Map([A, B].map((stack) => [stack, stack.eventBridge.events.length]));
    const sent = (stack: Stack) => stack.eventBridge.events.slice(before.get(stack));
    const held = (stack: Stack) =>
      [...heldBy.entries()]
        .filter(([key]) => key.startsWith(`${stack.facts.name}:`))
        .flatMap(([, ids]) => ids)
        .sort();
    const ids = (stack: Stack, type: string, reason?: string) =>
      sent(stack)
        .filter(
          (e) =>
            e.detailType === `pushwire.${type}` &&
            (reason === undefined || e.detail['reason'] === reason),
        )
        .map((e) => e.detail['connectionId'] as string)
        .sort();
    // Act: B's relay first (one outbox for both stacks would give it A's events too)
    const relayedB = await invoke(B, 'events', { once: true });
    const relayedA = await invoke(A, 'events', { once: true });
    // Assess
    expect(relayedA).toEqual({ sent: sent(A).length, failed: 0 });
    expect(relayedB).toEqual({ sent: sent(B).length, failed: 0 });
    for (const stack of [A, B]) {
      // $connect and $default run on the stack holding the connection
      expect(ids(stack, 'connected')).toEqual(held(stack));
      expect(ids(stack, 'subscribed')).toEqual(
        [0, 1, 2, 3].flatMap((i) => on(stack, `member${i}-${stack.facts.name}-2stacks`)).sort(),
      );
      for (const event of sent(stack)) {
        expect(event).toMatchObject({
          stack: stack.facts.name,
          functionKey: 'events',
          source: 'pushwire',
          bus: stack.eventsBus,
          busArn: `arn:aws:events:${stack.facts.region}:${ACCOUNT_ID}:event-bus/${stack.eventsBus}`,
        });
        expect(event.detail['stage']).toBe(stack.facts.stage);
        expect(
          eventDetailErrors(event.detailType.replace('pushwire.', ''), event.detail),
          JSON.stringify(event.detail),
        ).toEqual([]);
      }
    }
    // A kick is reported by the stack whose function removed the records, on both APIs.
    expect(ids(A, 'disconnected', 'kick')).toEqual(
      [...on(A, users.dave), ...on(B, users.dave)].sort(),
    );
    expect(ids(B, 'disconnected', 'kick')).toEqual(
      [...on(A, users.erin), ...on(B, users.erin)].sort(),
    );
    expect(ids(A, 'disconnected', 'client_close')).toEqual([on(A, users.carol)[0]]);
    expect(ids(B, 'disconnected', 'client_close')).toEqual([]);
    const eventIds = [...sent(A), ...sent(B)].map((e) => e.detail['eventId']);
    expect(new Set(eventIds).size).toBe(eventIds.length);
  });

  it("a leave on either stack is fanned out by that stack's presenceEvents to the members of both", async () => {
    // Prepare: a member of the topic on B goes ($disconnect on B).
    const id = on(B, 'member0-b-2stacks')[0] as string;
    expect((await invoke<Reply>(B, 'disconnect', disconnectEvent(B, id))).statusCode).toBe(200);
    B.mgmt.drop(id);
    // Act: each stack's queue runs (joins were queued by the subscribes on both).
    await A.invokeApi.runQueued();
    await B.invokeApi.runQueued();
    // Assess: a member held by A heard B's leave.
    const listener = on(A, 'member1-a-2stacks')[0] as string;
    expect(A.mgmt.postsTo(listener)).toContainEqual({
      type: 'leave',
      topic,
      userId: 'member0-b-2stacks',
    });
    for (const stack of [A, B])
      expect(stack.invokeApi.ran.every((r) => (r.outcome as { ok: boolean }).ok)).toBe(true);
  });

  it('the push path runs on each stack with its own roles, platform application and VAPID parameter', async () => {
    for (const stack of [A, B]) {
      const userId = `push-${stack.facts.name}-2stacks`;
      const sandbox = stack.current as LambdaSandbox;
      await exercisePush(stack, sandbox, await connect(stack, userId), userId);
    }
  });

  it('nothing failed, crashed or was refused for its signature, in either stack', () => {
    for (const stack of [A, B]) {
      expect(stack.current?.problems).toEqual([]);
      expect(stack.current?.foreignModules).toEqual([]);
      for (const api of [stack.mgmt, stack.invokeApi, stack.ssm, stack.secrets, stack.eventBridge])
        expect(api.signatureFailures).toEqual([]);
      expect(stack.eventBridge.malformed).toEqual([]);
    }
  });
});

describe("IAM: every request was allowed by its function's own role, and each grant was used", () => {
  const who = (r: { stack: string; functionKey: string }) =>
    `${r.stack}:${r.functionKey} (${stackOf(r.stack).iam.roleOf.get(r.functionKey)})`;

  it('every AWS request any function made was allowed by the role of that function', () => {
    expect(log.requests.length).toBeGreaterThan(100);
    const refused = log.requests
      .filter((r) => !r.allowed)
      .map((r) => {
        const iam = stackOf(r.stack).iam;
        const role = iam.roleOf.get(r.functionKey) as string;
        // The statements of the role granting that action: the one to widen.
        const near = [
          ...new Set(
            iam
              .grants(role)
              .filter((g) => g.action === r.action)
              .map((g) => `${g.policy} ${g.statement}`),
          ),
        ];
        return `${who(r)} was refused ${r.action} on ${r.resource}: ${
          near.length > 0 ? `add it to ${near.join(' or ')}` : `grant ${r.action} in ${role}`
        }`;
      });
    expect(refused).toEqual([]);
    // Each kind of call was made, by each stack.
    for (const stack of ['a', 'b'])
      expect(new Set(log.requests.filter((r) => r.stack === stack).map((r) => r.action))).toEqual(
        new Set([
          'execute-api:ManageConnections',
          'lambda:InvokeFunction',
          'ssm:GetParameter',
          'secretsmanager:GetSecretValue',
          'events:PutEvents',
          'sqs:SendMessage',
          'sns:CreatePlatformEndpoint',
          'sns:SetEndpointAttributes',
          'sns:Publish',
          'sns:DeleteEndpoint',
        ]),
      );
    // Lifecycle events were put by each stack's relay alone, on its own bus.
    const puts = log.requests
      .filter((r) => r.action === 'events:PutEvents')
      .map((r) => `${r.stack}:${r.functionKey} ${r.resource}`);
    expect(new Set(puts)).toEqual(
      new Set([
        `a:events ${A.eventBridge.busArn(A.eventsBus)}`,
        `b:events ${B.eventBridge.busArn(B.eventsBus)}`,
      ]),
    );
    // Posts crossed to the peer in both directions.
    expect(
      log.requests.some((r) => r.stack === 'a' && r.resource.includes(`:${STACK_B.apiId}/`)),
    ).toBe(true);
    expect(
      log.requests.some((r) => r.stack === 'b' && r.resource.includes(`:${STACK_A.apiId}/`)),
    ).toBe(true);
  });

  it("grants nothing that no function of the role used (Lambda's own uses excepted, each checked)", () => {
    const unused: string[] = [];
    for (const stack of [A, B]) {
      const name = stack.facts.name;
      for (const [role] of stack.iam.policies) {
        const fns = [...stack.iam.roleOf].filter(([, r]) => r === role).map(([fn]) => fn);
        if (fns.length === 0) continue;
        for (const grant of stack.iam.grants(role)) {
          if (used.has(grantKey(name, grant))) continue;
          // Used by Lambda for the function, not by its code: logs (every
          // function), X-Ray segments (active tracing), polling its queue.
          if (grant.policy === 'AWSLambdaBasicExecutionRole') continue;
          if (grant.statement === 'WriteTraces' && fns.every((fn) => stack.iam.traced.has(fn)))
            continue;
          if (
            (grant.statement === 'ConsumePublishQueue' ||
              grant.statement === 'ConsumeAckTimeouts') &&
            fns.some((fn) => stack.iam.polledQueues.get(fn)?.includes(grant.resource))
          )
            continue;
          unused.push(
            `${name}: ${role} grants ${grant.action} on ${grant.resource} (${grant.policy}, statement ${grant.statement}) and none of ${fns.join(', ')} used it: remove it`,
          );
        }
      }
    }
    expect(unused).toEqual([]);
  });

  it('a role without a statement its function uses would be refused, naming it (the check can fail)', async () => {
    const post = log.requests.find(
      (r) =>
        r.stack === 'a' && r.functionKey === 'deliver' && r.resource.includes(`:${STACK_B.apiId}/`),
    );
    expect(post).toBeDefined();
    const request = post as (typeof log.requests)[number];
    const policy = 'PushwireDeliverRole/post';
    const decision = await A.iam.decide('PushwireDeliverRole', request, {
      policy,
      statement: 'PostToConnections',
    });
    expect(decision.allowed).toBe(false);
    expect((await A.iam.decide('PushwireDeliverRole', request)).grants).toEqual([
      expect.objectContaining({ policy, statement: 'PostToConnections' }),
    ]);
  });

  it('refuses what must be refused, to every role it names', async () => {
    const ctx = (region: string) => ({
      'aws:RequestedRegion': region,
      'aws:PrincipalAccount': ACCOUNT_ID,
    });
    const connection = (
      stack: StackFacts,
      method: string,
      api = stack.apiId,
      stage = stack.stage,
    ) =>
      `arn:aws:execute-api:${stack.region}:${ACCOUNT_ID}:${api}/${stage}/${method}/@connections/Xyz=`;
    const mustRefuse: {
      stack: Stack;
      roles: string[];
      action: string;
      resource: string;
      why: string;
    }[] = [];
    for (const [stack, other] of [
      [A, B],
      [B, A],
    ] as const) {
      const everyRole = [...stack.iam.policies.keys()];
      const f = stack.facts;
      mustRefuse.push(
        {
          stack,
          roles: ['PushwireRegistryRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'POST'),
          why: "$connect's role posting to a connection",
        },
        {
          stack,
          roles: ['PushwireDeliverRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-deliver`,
          why: 'deliver invoking (itself)',
        },
        {
          stack,
          roles: ['PushwireDeliverRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-publish`,
          why: 'deliver invoking anything',
        },
        {
          stack,
          roles: ['PushwireDeliverRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'DELETE'),
          why: 'deliver closing',
        },
        {
          stack,
          roles: ['PushwireKickRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-deliver`,
          why: 'kick invoking',
        },
        {
          stack,
          roles: everyRole.filter((role) => role !== 'PushwireEventsRole'),
          action: 'events:PutEvents',
          resource: stack.eventBridge.busArn(stack.eventsBus),
          why: 'any role but the relay putting lifecycle events',
        },
        {
          stack,
          roles: everyRole,
          action: 'events:PutEvents',
          resource: stack.eventBridge.busArn(other.eventsBus),
          why: 'putting events on a bus other than the configured one',
        },
        {
          stack,
          roles: everyRole,
          action: 'events:PutEvents',
          resource: `arn:aws:events:${other.facts.region}:${ACCOUNT_ID}:event-bus/${stack.eventsBus}`,
          why: 'putting events on a bus of that name in another region',
        },
        {
          stack,
          roles: ['PushwireEventsRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'POST'),
          why: 'the events relay posting to a connection',
        },
        {
          stack,
          roles: ['PushwireEventsRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'DELETE'),
          why: 'the events relay closing a connection',
        },
        {
          stack,
          roles: ['PushwireEventsRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-deliver`,
          why: 'the events relay invoking',
        },
        {
          stack,
          roles: ['PushwireClientRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-deliver`,
          why: '$default invoking anything but publish',
        },
        {
          stack,
          roles: ['PushwireClientRole', 'PushwireServiceRole', 'PushwireDeliverRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:${hookName(f)}`,
          why: 'the publish hook invoked by any role but publish',
        },
        {
          stack,
          roles: ['PushwirePublishRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:${hookName(other.facts)}`,
          why: "publish invoking another stage's hook",
        },
        {
          stack,
          roles: ['PushwireClientRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(other.facts, 'POST'),
          why: '$default posting to a peer',
        },
        // Acknowledged messages (issue 18).
        {
          stack,
          roles: everyRole.filter(
            (role) =>
              !['PushwirePublishRole', 'PushwireServiceRole', 'PushwireAckRole'].includes(role),
          ),
          action: 'sqs:SendMessage',
          resource: `arn:aws:sqs:${f.region}:${ACCOUNT_ID}:pushwire-${f.stage}-acks`,
          why: 'any role but publishing ones and ackTimeout scheduling ack timeouts',
        },
        {
          stack,
          roles: everyRole,
          action: 'sqs:SendMessage',
          resource: `arn:aws:sqs:${other.facts.region}:${ACCOUNT_ID}:pushwire-${other.facts.stage}-acks`,
          why: "sending to another stage's ack queue",
        },
        {
          stack,
          roles: everyRole,
          action: 'sqs:SendMessage',
          resource: `arn:aws:sqs:${f.region}:${ACCOUNT_ID}:pushwire-${f.stage}-publish`,
          why: 'sending to the publish queue (services do, not pushwire)',
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'POST'),
          why: 'ackTimeout posting to a connection',
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'lambda:InvokeFunction',
          resource: `arn:aws:lambda:${f.region}:${ACCOUNT_ID}:function:pushwire-${f.stage}-deliver`,
          why: 'ackTimeout invoking',
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'sns:CreatePlatformEndpoint',
          resource: '*',
          why: 'ackTimeout registering devices (only devices and http do)',
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'sns:SetEndpointAttributes',
          resource: '*',
          why: 'ackTimeout changing endpoints',
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'ssm:GetParameter',
          resource: `arn:aws:ssm:${f.region}:${ACCOUNT_ID}:parameter${other.vapidParameter}`,
          why: "ackTimeout reading another stage's VAPID key",
        },
        {
          stack,
          roles: ['PushwireAckRole'],
          action: 'events:PutEvents',
          resource: stack.eventBridge.busArn(stack.eventsBus),
          why: 'ackTimeout putting events',
        },
        {
          stack,
          roles: everyRole,
          action: 'ssm:GetParameter',
          resource: `arn:aws:ssm:${f.region}:${ACCOUNT_ID}:parameter/pushwire/${other.facts.stage}/redis-url`,
          why: "reading another stage's parameter",
        },
        {
          stack,
          roles: everyRole,
          action: 'ssm:GetParameter',
          resource: `arn:aws:ssm:${f.region}:${ACCOUNT_ID}:parameter/pushwire/staging/jwt-secret`,
          why: "reading another stage's parameter",
        },
        {
          stack,
          roles: everyRole,
          action: 'secretsmanager:GetSecretValue',
          resource: other.jwtSecretArn.replace(other.facts.region, f.region),
          why: "reading another stage's secret",
        },
        {
          stack,
          roles: everyRole,
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'POST', 'zzzz9999zz'),
          why: 'posting to an API outside the peers',
        },
        {
          stack,
          roles: everyRole,
          action: 'execute-api:ManageConnections',
          resource: connection(f, 'DELETE', 'zzzz9999zz'),
          why: 'closing on an API outside the peers',
        },
        {
          stack,
          roles: everyRole,
          action: 'execute-api:ManageConnections',
          resource: connection(other.facts, 'POST', other.facts.apiId, 'dev'),
          why: "posting to another stage of a peer's API",
        },
      );
    }
    const allowed: string[] = [];
    let evaluated = 0;
    for (const m of mustRefuse)
      for (const role of m.roles) {
        const decision = await m.stack.iam.decide(role, {
          action: m.action,
          resource: m.resource,
          context: ctx(m.stack.facts.region),
        });
        evaluated++;
        if (decision.allowed)
          allowed.push(
            `${m.stack.facts.name}: ${role} may ${m.action} on ${m.resource} (${m.why}), by ${decision.grants.map((g) => `${g.policy} ${g.statement}`).join(', ')}`,
          );
      }
    expect(allowed).toEqual([]);
    expect(evaluated).toBeGreaterThan(90);
  });
});
