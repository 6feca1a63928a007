import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

/**
 * The contract, checked on the wire: every frame the server sends and every
 * action a client sends in the end-to-end suites is validated against the
 * JSON Schemas of docs/asyncapi.yaml, and every HTTP exchange (and every
 * Lambda Invoke of publish/presence/kick, which takes and answers the same
 * JSON) against docs/openapi.yaml. The test helpers call these (client.ts,
 * library-client.ts, resuming-client.ts, offline.ts), so a wire change the
 * documents do not describe fails CI.
 *
 * A violation is recorded (useStack's afterEach fails the test on any) and
 * thrown where it was seen: an uncaught error fails the run even where no
 * afterEach runs.
 */

// PUSHWIRE_ROOT first: the benchmark bundles this (through bench/offline.ts)
// as CommonJS, where import.meta.url is empty (bench/launch.ts sets it).
const root = process.env['PUSHWIRE_ROOT'] ?? join(dirname(fileURLToPath(import.meta.url)), '../..');
export const ASYNCAPI_PATH = join(root, 'docs/asyncapi.yaml');
export const OPENAPI_PATH = join(root, 'docs/openapi.yaml');

type Doc = { components: { schemas: Record<string, unknown> } };
type Message = { name?: string; payload: { $ref: string }; examples?: { payload: unknown }[] };
export const asyncapi = parse(readFileSync(ASYNCAPI_PATH, 'utf8')) as Doc & {
  channels: Record<string, { messages: Record<string, { $ref: string }> }>;
  components: { messages: Record<string, Message> };
};

/** The messages of one channel of docs/asyncapi.yaml (`connection`: frames; `events`: lifecycle events), by their key there. */
export function channelMessages(channel: 'connection' | 'events'): [string, Message][] {
  return Object.entries(asyncapi.channels[channel]?.messages ?? {}).map(([key, { $ref }]) => [
    key,
    asyncapi.components.messages[$ref.split('/').pop() as string] as Message,
  ]);
}
export const openapi = parse(readFileSync(OPENAPI_PATH, 'utf8')) as Doc & {
  paths: Record<string, { post: OpenApiOperation }>;
  components: { responses: Record<string, OpenApiResponse> };
};

interface OpenApiResponse {
  content?: { 'application/json': { schema: { $ref?: string } } };
}
interface OpenApiOperation {
  requestBody: { content: { 'application/json': { schema: { $ref: string } } } };
  responses: Record<string, OpenApiResponse | { $ref: string }>;
}

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
// The documents' own keywords around their schemas: refs walk through them.
ajv.addVocabulary(['components', 'paths', 'messages', 'responses']);
ajv.addSchema({ $id: 'asyncapi', components: asyncapi.components }, 'asyncapi');
ajv.addSchema({ $id: 'openapi', components: openapi.components }, 'openapi');

const compiled = new Map<string, ValidateFunction>();
function validator(ref: string): ValidateFunction {
  let fn = compiled.get(ref);
  if (!fn) {
    fn = ajv.compile({ $ref: ref });
    compiled.set(ref, fn);
  }
  return fn;
}
const asyncSchema = (name: string) => validator(`asyncapi#/components/schemas/${name}`);
const openSchema = (ref: string) => validator(`openapi${ref}`);

/** Server frame `type` → its schema, and client `action` → its schema, from the document's messages. */
const SERVER_TYPES: Record<string, string> = {};
const CLIENT_ACTIONS: Record<string, string> = {};
for (const [name, message] of channelMessages('connection')) {
  const schema = message.payload.$ref.split('/').pop() as string;
  // By the message's name: a client action and a server frame may share one (presence).
  if (schema.endsWith('Action')) CLIENT_ACTIONS[message.name ?? name] = schema;
  else SERVER_TYPES[name] = schema;
}

export class ContractViolation extends Error {
  override name = 'ContractViolation';
}

const describe = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');

/** Violations seen and not yet claimed by assertContractKept(). */
const violations: ContractViolation[] = [];
/** Where violations go: recorded and thrown, unless a test proving the check swaps it. */
let reporter: (violation: ContractViolation) => void = (violation) => {
  violations.push(violation);
  throw violation;
};

/** Runs `fn` with violations handed to `onViolation` instead (for tests of the check itself). */
export async function withReporter<T>(
  onViolation: (violation: ContractViolation) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const previous = reporter;
  reporter = onViolation;
  try {
    return await fn();
  } finally {
    reporter = previous;
  }
}

function report(message: string): void {
  reporter(new ContractViolation(message));
}

/** Fails (once) if any violation was seen since the last call; useStack calls it after each test. */
export function assertContractKept(): void {
  if (violations.length === 0) return;
  const seen = violations.splice(0);
  throw new ContractViolation(
    `${seen.length} wire exchange(s) not described by docs/: ${seen.map((v) => v.message).join(' | ')}`,
  );
}

/** The schema errors of one server frame (as parsed JSON), or undefined if it is described. */
export function serverFrameErrors(frame: unknown): string | undefined {
  const type = (frame as { type?: unknown } | null)?.type;
  const schema = typeof type === 'string' ? SERVER_TYPES[type] : undefined;
  if (!schema) return `no server frame of type ${JSON.stringify(type)} in docs/asyncapi.yaml`;
  const validate = asyncSchema(schema);
  return validate(frame) ? undefined : `${schema}: ${describe(validate.errors)}`;
}

/** The schema errors of one client frame, or undefined if it is described. */
export function clientFrameErrors(frame: unknown): string | undefined {
  const action = (frame as { action?: unknown } | null)?.action;
  const schema = typeof action === 'string' ? CLIENT_ACTIONS[action] : undefined;
  if (!schema) return `no client action ${JSON.stringify(action)} in docs/asyncapi.yaml`;
  const validate = asyncSchema(schema);
  return validate(frame) ? undefined : `${schema}: ${describe(validate.errors)}`;
}

/** Checks one WebSocket message the server sent (its text). */
export function checkServerMessage(text: string): void {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    report(`server sent a message that is not JSON: ${text.slice(0, 200)}`);
    return;
  }
  const errors = serverFrameErrors(frame);
  if (errors) report(`server frame ${text.slice(0, 300)}: ${errors}`);
}

/** Checks one frame a client library sent (its text). */
export function checkClientMessage(text: string): void {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    report(`client sent a message that is not JSON: ${text.slice(0, 200)}`);
    return;
  }
  const errors = clientFrameErrors(frame);
  if (errors) report(`client frame ${text.slice(0, 300)}: ${errors}`);
}

export type HttpOperation = 'publish' | 'presence' | 'kick' | 'status' | 'devices';

function responseSchema(operation: HttpOperation, status: number): string | undefined {
  const described = openapi.paths[`/${operation}`]?.post.responses[String(status)];
  if (!described) return undefined;
  const response =
    '$ref' in described
      ? openapi.components.responses[described.$ref.split('/').pop() as string]
      : described;
  return response?.content?.['application/json'].schema.$ref;
}

/** The errors of one exchange with an operation, or undefined if the contract describes it. */
export function httpExchangeErrors(
  operation: HttpOperation,
  request: unknown,
  status: number,
  response: unknown,
): string | undefined {
  const path = openapi.paths[`/${operation}`];
  if (!path) return `no operation /${operation} in docs/openapi.yaml`;
  const problems: string[] = [];
  const ref = responseSchema(operation, status);
  if (!ref) problems.push(`status ${status} is not documented`);
  else {
    const validate = openSchema(ref);
    if (!validate(response)) problems.push(`response: ${describe(validate.errors)}`);
  }
  // Both ways: what the server accepted, the contract must accept, and a
  // request the contract accepts must not be refused as malformed.
  const requestValidator = openSchema(
    path.post.requestBody.content['application/json'].schema.$ref,
  );
  const requestValid = requestValidator(request);
  if (status === 200 && !requestValid)
    problems.push(`accepted request: ${describe(requestValidator.errors)}`);
  if (status === 400 && requestValid)
    problems.push('the contract allows this request, but the server refused it as invalid');
  return problems.length === 0 ? undefined : problems.join('; ');
}

/** Checks an HTTP exchange (or a Lambda Invoke: 200, or 400/413 for an `{error}` result). */
export function checkHttpExchange(
  operation: HttpOperation,
  request: unknown,
  status: number,
  response: unknown,
): void {
  const errors = httpExchangeErrors(operation, request, status, response);
  if (errors)
    report(
      `POST /${operation} ${JSON.stringify(request)?.slice(0, 200)} → ${status} ${JSON.stringify(response)?.slice(0, 200)}: ${errors}`,
    );
}

/** What an `{error}` result of a Lambda Invoke would have been answered with over HTTP. */
export const ERROR_STATUS: Record<string, number> = {
  invalid_request: 400,
  not_found: 404,
  push_unsupported: 400,
  too_large: 413,
  in_progress: 503,
  unavailable: 503,
  internal: 500,
};

/** A `fetch` for the HTTP API that checks every exchange against docs/openapi.yaml. */
export const contractFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  const operation = url.pathname.split('/').filter(Boolean).pop() as HttpOperation;
  const method = (init?.method ?? 'GET').toUpperCase();
  if (method !== 'POST' || !openapi.paths[`/${operation}`]) {
    // docs/protocol.md PW-S5: a wrong path or method is 404 or 405, its body
    // the gateway's own where API Gateway (or serverless-offline) answers.
    if (response.status !== 404 && response.status !== 405)
      report(`${method} ${url.pathname} → ${response.status}: only 404 or 405 is documented`);
    return response;
  }
  const text = await response.clone().text();
  let request: unknown;
  let body: unknown;
  try {
    request = JSON.parse(String(init?.body));
  } catch {
    request = init?.body;
  }
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  checkHttpExchange(operation, request, response.status, body);
  return response;
};
