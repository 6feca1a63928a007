import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Parser } from '@asyncapi/parser';
import { Validator } from '@seriousme/openapi-schema-validator';
import { toJsonSchema } from '@valibot/to-json-schema';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { Frame as ClientLibraryFrame } from '../../client/pushwire.js';
import {
  ClientFrame,
  ERROR_CODES,
  parseClientFrame,
  type ServerFrame,
} from '../../lib/protocol/frames.js';
import { isCursor } from '../../lib/registry/cursor.js';
import type {
  DeviceSummary,
  KickResult,
  PresenceRequest,
  PresenceResult,
  PublishBatchMessageResult,
  PublishBatchRequest,
  PublishBatchResult,
  PublishRequest,
  PublishResult,
} from '../../server/types.js';
import { TestClient } from '../helpers/client.js';
import {
  ASYNCAPI_PATH,
  asyncapi,
  type ContractViolation,
  channelMessages,
  checkClientMessage,
  contractFetch,
  OPENAPI_PATH,
  openapi,
  serverFrameErrors,
  withReporter,
} from '../helpers/contract.js';

/**
 * The contract itself (docs/asyncapi.yaml, docs/openapi.yaml): valid by the
 * official parsers, able to fail, and in step with the code that speaks it.
 * Why checked here rather than generated: the server's valibot schemas carry
 * checks JSON Schema cannot say (a cursor's 16-digit bound is a function,
 * publish's "exactly one target" is a refinement) and hand-written error
 * messages clients see; generating either side from the other would lose
 * those, so both are written and this file proves they say the same.
 */

type Schema = Record<string, unknown>;
const schemas = asyncapi.components.schemas as Record<string, Schema>;

/** A schema with its local `$ref`s inlined and descriptions dropped, to compare by value. */
function resolve(schema: unknown, from: Record<string, Schema>): unknown {
  if (Array.isArray(schema)) return schema.map((s) => resolve(s, from));
  if (!schema || typeof schema !== 'object') return schema;
  const { $ref, description: _d, ...rest } = schema as Schema & { $ref?: string };
  if ($ref) return resolve(from[$ref.split('/').pop() as string], from);
  return Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, resolve(v, from)]));
}

describe('the documents', () => {
  it('docs/asyncapi.yaml parses with @asyncapi/parser without errors or warnings', async () => {
    const { document, diagnostics } = await new Parser().parse(
      (await import('node:fs')).readFileSync(ASYNCAPI_PATH, 'utf8'),
    );
    // Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
    const problems = diagnostics.filter((d) => d.severity <= 1);
    expect(problems.map((d) => `${d.path.join('.')}: ${d.message}`)).toEqual([]);
    expect(document?.operations().length).toBe(14);
  });

  it('docs/openapi.yaml is valid OpenAPI 3.1 by the OpenAPI Initiative schema', async () => {
    const validator = new Validator();
    const result = await validator.validate(OPENAPI_PATH);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it("every frame example in docs/asyncapi.yaml is valid by its message's schema (events: events-schema.test.ts)", () => {
    let count = 0;
    for (const [name, message] of channelMessages('connection')) {
      for (const example of (message as { examples?: { payload: unknown }[] }).examples ?? []) {
        count++;
        if ((message as { payload: { $ref: string } }).payload.$ref.endsWith('Action'))
          expect(parseClientFrame(JSON.stringify(example.payload))).toEqual(example.payload);
        else expect(serverFrameErrors(example.payload), name).toBeUndefined();
      }
    }
    expect(count).toBeGreaterThan(15);
  });
});

describe('the check fails on what the contract does not describe', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('a server frame of an undocumented type, or with an undocumented field, is a violation', async () => {
    // Prepare: a server that speaks one documented frame and two undocumented ones.
    const server = new WebSocketServer({ port: 0 });
    close = () => new Promise((done) => server.close(() => done()));
    server.on('connection', (socket) => {
      socket.send(JSON.stringify({ type: 'pong', connectionId: 'c1' }));
      socket.send(JSON.stringify({ type: 'welcome' }));
      socket.send(JSON.stringify({ type: 'subscribed', topic: 'news', members: 3 }));
    });
    const seen: ContractViolation[] = [];

    // Act
    await withReporter(
      (violation) => seen.push(violation),
      async () => {
        const client = await TestClient.connect(
          `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
        );
        await client.next((f) => f.type === 'subscribed');
        await client.close();
      },
    );

    // Assess
    expect(seen.map((v) => v.message)).toEqual([
      expect.stringContaining('no server frame of type "welcome"'),
      expect.stringContaining('must NOT have additional properties'),
    ]);
  });

  it('without a reporter swapped in, a violation is thrown (and fails the test that saw it)', () => {
    expect(() => checkClientMessage('{"action":"shout","topic":"news"}')).toThrow(
      /no client action "shout"/,
    );
    // Claimed here, so useStack's afterEach check stays for real violations.
    expect(() => checkClientMessage('{"action":"ping","ref":""}')).toThrow(/ref/);
  });

  it('an HTTP answer with an undocumented status or shape is a violation', async () => {
    // Prepare: /publish answers 202 (undocumented); /presence a result with
    // an extra field; a wrong path 200 (only 404 or 405 is documented).
    const server = createServer((request, response) => {
      response.setHeader('content-type', 'application/json');
      if (request.url === '/publish') response.writeHead(202).end('{}');
      else if (request.url === '/nope') response.end('{}');
      else response.end('{"users":{},"extra":1}');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    close = () => new Promise((done) => server.close(() => done()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const seen: string[] = [];

    // Act
    await withReporter(
      (violation) => seen.push(violation.message),
      async () => {
        await contractFetch(`${base}/publish`, {
          method: 'POST',
          body: '{"userId":"a","data":1}',
        });
        await contractFetch(`${base}/presence`, { method: 'POST', body: '{"userIds":["a"]}' });
        await contractFetch(`${base}/nope`, { method: 'POST', body: '{}' });
      },
    );

    // Assess
    expect(seen).toEqual([
      expect.stringContaining('status 202 is not documented'),
      expect.stringContaining('must NOT have additional properties'),
      expect.stringContaining('POST /nope → 200: only 404 or 405 is documented'),
    ]);
  });
});

describe('the code is in step with the documents', () => {
  it("the server's valibot client frame schemas are the document's, action by action", () => {
    const fromCode = (toJsonSchema(ClientFrame, { errorMode: 'ignore' }) as { oneOf: Schema[] })
      .oneOf;
    const fromDoc = (resolve(schemas['ClientFrame'], schemas) as { oneOf: Schema[] }).oneOf;
    expect(fromCode.length).toBe(fromDoc.length);
    for (const [i, code] of fromCode.entries()) {
      const doc = fromDoc[i] as Schema;
      const properties = code['properties'] as Record<string, Schema>;
      // `since` is checked by a function (isCursor) that JSON Schema cannot
      // carry over; the document's pattern says the same (checked below).
      if (properties['since'])
        properties['since'] = (doc['properties'] as Schema)['since'] as Schema;
      expect(code, String((doc['properties'] as Schema)['action'])).toEqual({
        ...doc,
        required: expect.arrayContaining(doc['required'] as string[]),
      });
    }
    const since = new RegExp((schemas['SinceCursor'] as { pattern: string }).pattern);
    for (const sample of [
      '1',
      '1-0',
      '1732752000000-12',
      `${'9'.repeat(16)}-${'9'.repeat(16)}`,
      '',
      '-1',
      '1-',
      'a-0',
      `${'9'.repeat(17)}-0`,
      '1-0-0',
    ])
      expect(since.test(sample), sample).toBe(isCursor(sample));
  });

  it('every error code the server knows is in the document, and no other', () => {
    expect([...ERROR_CODES].sort()).toEqual(
      [...(schemas['ErrorCode'] as { enum: string[] }).enum].sort(),
    );
  });

  // Every field of every ServerFrame variant, as a type-checked literal:
  // `Record<keys, 1>` must name every key of the variant, and `satisfies`
  // refuses a key it does not have, so `npm run typecheck` fails when the
  // type and this list differ, and the test below when the list and the
  // document differ.
  type AllKeys<T> = T extends unknown ? keyof T : never;
  type FieldsOf<K extends ServerFrame['type']> = Record<
    AllKeys<Extract<ServerFrame, { type: K }>>,
    1
  >;
  const serverFields = {
    pong: { type: 1, connectionId: 1, epoch: 1, cursor: 1, ref: 1 },
    subscribed: { type: 1, topic: 1, cursor: 1, delta: 1, ref: 1 },
    unsubscribed: { type: 1, topic: 1, ref: 1 },
    resumed: { type: 1, recovered: 1, topic: 1, cursor: 1, ref: 1 },
    authenticated: { type: 1, expiresAt: 1, ref: 1 },
    published: { type: 1, topic: 1, id: 1, cursor: 1, duplicate: 1, ref: 1 },
    message: {
      type: 1,
      id: 1,
      data: 1,
      cursor: 1,
      topic: 1,
      from: 1,
      ephemeral: 1,
      ack: 1,
      dismissed: 1,
      delta: 1,
    },
    acked: { type: 1, ids: 1, refused: 1, ref: 1 },
    dismiss: { type: 1, id: 1 },
    batch: { type: 1, messages: 1 },
    part: { type: 1, id: 1, n: 1, of: 1, data: 1 },
    presence: { type: 1, topic: 1, members: 1, count: 1, next: 1, ref: 1 },
    join: { type: 1, topic: 1, userId: 1, info: 1 },
    leave: { type: 1, topic: 1, userId: 1 },
    presence_diff: { type: 1, topic: 1, joined: 1, left: 1 },
    push_registered: { type: 1, id: 1, expiresAt: 1, evicted: 1, ref: 1 },
    push_unregistered: { type: 1, id: 1, removed: 1, ref: 1 },
    error: { type: 1, code: 1, message: 1, retryAfter: 1, topic: 1, ref: 1 },
  } satisfies { [K in ServerFrame['type']]: FieldsOf<K> };

  const docFields = (schema: string) =>
    Object.keys((schemas[schema] as { properties: Schema }).properties).sort();
  const serverFrameSchemas = Object.fromEntries(
    channelMessages('connection')
      .filter(([, m]) => !m.payload.$ref.endsWith('Action'))
      .map(([name, m]) => [name, m.payload.$ref.split('/').pop() as string]),
  );

  it("lib/protocol/frames.ts's ServerFrame has exactly the document's frames and fields", () => {
    expect(Object.keys(serverFields).sort()).toEqual(Object.keys(serverFrameSchemas).sort());
    for (const [type, fields] of Object.entries(serverFields))
      expect(Object.keys(fields).sort(), type).toEqual(
        docFields(serverFrameSchemas[type] as string),
      );
  });

  it("the client library's Frame reads only fields the document's server frames have, and every one", () => {
    const clientFields = {
      type: 1,
      id: 1,
      data: 1,
      topic: 1,
      cursor: 1,
      connectionId: 1,
      epoch: 1,
      recovered: 1,
      messages: 1,
      code: 1,
      message: 1,
      ref: 1,
      retryAfter: 1,
      expiresAt: 1,
      from: 1,
      ephemeral: 1,
      delta: 1,
      duplicate: 1,
      members: 1,
      count: 1,
      next: 1,
      userId: 1,
      info: 1,
      joined: 1,
      left: 1,
      n: 1,
      of: 1,
      ack: 1,
      dismissed: 1,
      ids: 1,
      refused: 1,
      evicted: 1,
      removed: 1,
    } satisfies Record<keyof ClientLibraryFrame, 1>;
    const documented = new Set(Object.values(serverFrameSchemas).flatMap((s) => docFields(s)));
    expect(Object.keys(clientFields).sort()).toEqual([...documented].sort());
  });

  it("the server SDK's request and result types have exactly the document's fields", () => {
    type Keys<T> = Record<AllKeys<T>, 1>;
    const publishRequest = {
      userId: 1,
      userIds: 1,
      connectionIds: 1,
      topic: 1,
      broadcast: 1,
      data: 1,
      id: 1,
      exceptConnectionId: 1,
      ephemeral: 1,
      ack: 1,
    } satisfies Keys<PublishRequest>;
    const publishResult = {
      id: 1,
      recipients: 1,
      delivered: 1,
      gone: 1,
      failed: 1,
      chunks: 1,
      stored: 1,
      cursor: 1,
      cursors: 1,
      duplicate: 1,
    } satisfies Keys<PublishResult>;
    const batchRequest = { messages: 1 } satisfies Keys<PublishBatchRequest>;
    const batchResult = {
      messages: 1,
      recipients: 1,
      delivered: 1,
      gone: 1,
      failed: 1,
      chunks: 1,
    } satisfies Keys<PublishBatchResult>;
    const { chunks: _chunks, ...batchMessageResult } = publishResult;
    const batchMessageError = { id: 1, error: 1 } as const;
    batchMessageResult satisfies Keys<Exclude<PublishBatchMessageResult, { error: unknown }>>;
    batchMessageError satisfies Keys<Extract<PublishBatchMessageResult, { error: unknown }>>;
    const presenceRequest = {
      userIds: 1,
      topic: 1,
      members: 1,
      cursor: 1,
      limit: 1,
    } satisfies Keys<PresenceRequest>;
    const presenceResult = {
      users: 1,
      topic: 1,
      members: 1,
      count: 1,
      next: 1,
    } satisfies Keys<PresenceResult>;
    const kickResult = {
      revoked: 1,
      connections: 1,
      closed: 1,
      gone: 1,
      failed: 1,
    } satisfies Keys<KickResult>;
    const deviceSummary = {
      id: 1,
      kind: 1,
      platform: 1,
      origin: 1,
      registeredAt: 1,
      expiresAt: 1,
    } satisfies Keys<DeviceSummary>;
    const open = openapi.components.schemas as Record<string, { properties: Schema }>;
    const fields = (name: string) => Object.keys(open[name]?.properties ?? {}).sort();
    expect(Object.keys(publishRequest).sort()).toEqual(fields('PublishRequest'));
    expect(Object.keys(publishResult).sort()).toEqual(fields('PublishResult'));
    expect(Object.keys(batchRequest).sort()).toEqual(fields('PublishBatchRequest'));
    expect(Object.keys(batchResult).sort()).toEqual(fields('PublishBatchResult'));
    const [sent, refused] = (
      open['PublishBatchMessageResult'] as unknown as { oneOf: { properties: Schema }[] }
    ).oneOf;
    expect(Object.keys(batchMessageResult).sort()).toEqual(
      Object.keys(sent?.properties ?? {}).sort(),
    );
    expect(Object.keys(batchMessageError).sort()).toEqual(
      Object.keys(refused?.properties ?? {}).sort(),
    );
    expect(Object.keys(presenceRequest).sort()).toEqual(fields('PresenceRequest'));
    expect(Object.keys(presenceResult).sort()).toEqual(fields('PresenceResult'));
    expect(Object.keys(kickResult).sort()).toEqual(fields('KickResult'));
    expect(Object.keys(deviceSummary).sort()).toEqual(fields('DeviceSummary'));
  });
});
