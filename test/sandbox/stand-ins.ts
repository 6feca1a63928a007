import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parsePutEvents } from '../../scripts/local-bus.js';
import { parseSendMessage } from '../../scripts/local-queue.js';
import { type ReceivedRequest, type SigV4Check, verifySigV4 } from '../helpers/sigv4.js';

/** A request a stand-in refused for its signature, with why. */
export interface SignatureFailure {
  url: string;
  check: SigV4Check;
}

interface Listening {
  server: Server;
  port: number;
}

async function listen(
  handle: (request: ReceivedRequest, res: ServerResponse) => void | Promise<void>,
): Promise<Listening> {
  const server = createServer((req: IncomingMessage, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const request = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(parts),
      };
      Promise.resolve(handle(request, res)).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

export interface SessionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/**
 * The credentials Lambda hands each function: a session of its role. Each
 * function of each stack gets its own key here, so a stand-in knows from a
 * request's signature which function made it (and so which role it holds).
 */
export class Keyring {
  readonly #byKey = new Map<string, SessionCredentials & { stack: string; functionKey: string }>();

  issue(stack: string, functionKey: string): SessionCredentials {
    const id = `ASIA${stack}${functionKey}`.toUpperCase().replace(/[^A-Z0-9]/g, '');
    const credentials = {
      accessKeyId: id,
      secretAccessKey: `sandbox/${stack}/${functionKey}+key=EXAMPLE`,
      sessionToken: `IQoJb3JpZ2luX2Vj//${stack}-${functionKey}+session=`,
    };
    this.#byKey.set(id, { ...credentials, stack, functionKey });
    return credentials;
  }

  lookup(accessKeyId: string) {
    return this.#byKey.get(accessKeyId);
  }
}

/**
 * One AWS request as IAM would see it: who (the function whose session
 * signed it), the action, the resource ARN built from the request itself,
 * and the request's condition keys. `allowed` is what the authorizer said.
 */
export interface AwsRequest {
  stack: string;
  functionKey: string;
  action: string;
  resource: string;
  context: Record<string, string>;
  allowed: boolean;
}

/** Decides a signed request as IAM would (test/sandbox/iam.ts); absent: everything is allowed. */
export type Authorize = (request: Omit<AwsRequest, 'allowed'>) => Promise<boolean> | boolean;

/** Where every stand-in records the requests it authorized (or refused). */
export interface RequestLog {
  requests: AwsRequest[];
  authorize?: Authorize;
}

export const ACCOUNT_ID = '123456789012';

/** Checks a request is SigV4-signed by a session of the keyring for `service` in `region`. */
function checker(keyring: Keyring, region: string, service: string) {
  return (request: ReceivedRequest): SigV4Check => {
    const check = verifySigV4(request, (id) => keyring.lookup(id)?.secretAccessKey);
    if (!check.ok) return check;
    if (check.region !== region || check.service !== service)
      return { ...check, ok: false, reason: `signed for ${check.service} in ${check.region}` };
    const session = keyring.lookup(check.accessKeyId ?? '');
    if (request.headers['x-amz-security-token'] !== session?.sessionToken)
      return { ...check, ok: false, reason: 'no session token (x-amz-security-token)' };
    return check;
  };
}

/**
 * Records a signed request with its action and resource, asks the log's
 * authorizer, and says whether to go on; a refused one is answered 403
 * AccessDeniedException, as AWS answers it.
 */
async function authorized(
  log: RequestLog | undefined,
  check: SigV4Check,
  keyring: Keyring,
  what: {
    action: string;
    resource: string;
    region: string;
    /** The action's own condition keys (`events:source`, ...). */
    context?: Record<string, string>;
  },
  res: ServerResponse,
): Promise<boolean> {
  if (!log) return true;
  const session = keyring.lookup(check.accessKeyId ?? '');
  if (!session) throw new Error(`no session for ${check.accessKeyId}`);
  const request = {
    stack: session.stack,
    functionKey: session.functionKey,
    action: what.action,
    resource: what.resource,
    context: {
      'aws:RequestedRegion': what.region,
      'aws:PrincipalAccount': ACCOUNT_ID,
      ...what.context,
    },
  };
  const allowed = (await log.authorize?.(request)) ?? true;
  log.requests.push({ ...request, allowed });
  if (!allowed)
    res
      .writeHead(403, {
        'content-type': 'application/json',
        'x-amzn-errortype': 'AccessDeniedException',
      })
      .end(JSON.stringify({ __type: 'AccessDeniedException', message: 'not authorized' }));
  return allowed;
}

export interface Post {
  connectionId: string;
  data: string;
}

/**
 * API Gateway's management API for one stage (`/{stage}/@connections/{id}`):
 * posts to an open connection are recorded and answered 200, DELETE closes
 * it (204), anything to a connection it does not hold is 410
 * GoneException, as API Gateway answers. Every request must carry a valid
 * SigV4 signature for execute-api in the region: one that does not is
 * refused with 403 and recorded as a failure.
 */
export class ManagementApiStandIn {
  readonly posts: Post[] = [];
  readonly deletes: string[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  readonly #open = new Set<string>();
  #listening?: Listening;

  private constructor(
    readonly stage: string,
    readonly region: string,
    readonly apiId: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
  ) {
    this.check = checker(keyring, region, 'execute-api');
  }

  readonly check: (request: ReceivedRequest) => SigV4Check;

  /** The API `apiId` of `stage` in `region`; signed requests are recorded in `log`. */
  static async start(options: {
    stage: string;
    region: string;
    apiId: string;
    keyring: Keyring;
    log?: RequestLog;
  }): Promise<ManagementApiStandIn> {
    const { stage, region, apiId, keyring, log } = options;
    const api = new ManagementApiStandIn(stage, region, apiId, keyring, log);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  /** The ARN IAM authorizes a call to a connection of this API against. */
  arn(method: string, connectionId: string): string {
    return `arn:aws:execute-api:${this.region}:${ACCOUNT_ID}:${this.apiId}/${this.stage}/${method}/@connections/${connectionId}`;
  }

  /** The callback URL the functions record (what WS_CALLBACK_URL says). */
  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}/${this.stage}`;
  }

  /** API Gateway accepted a connection (its $connect returned 200). */
  open(connectionId: string): void {
    this.#open.add(connectionId);
  }

  /** The client went away without API Gateway telling us (a 410 next time). */
  drop(connectionId: string): void {
    this.#open.delete(connectionId);
  }

  postsTo(connectionId: string): unknown[] {
    return this.posts.filter((p) => p.connectionId === connectionId).map((p) => JSON.parse(p.data));
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const match = new RegExp(`^/${this.stage}/@connections/([^/?]+)$`).exec(request.url);
    if (!match) {
      res.writeHead(404, { 'x-amzn-errortype': 'NotFoundException' }).end('{}');
      return;
    }
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, { 'x-amzn-errortype': 'InvalidSignatureException' }).end('{}');
      return;
    }
    const connectionId = decodeURIComponent(match[1] as string);
    const resource = this.arn(request.method, connectionId);
    const what = { action: 'execute-api:ManageConnections', resource, region: this.region };
    if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    if (!this.#open.has(connectionId)) {
      res.writeHead(410, { 'x-amzn-errortype': 'GoneException' }).end('{"message":null}');
      return;
    }
    if (request.method === 'POST') {
      this.posts.push({ connectionId, data: request.body.toString('utf8') });
      res.writeHead(200).end();
    } else if (request.method === 'DELETE') {
      this.deletes.push(connectionId);
      this.#open.delete(connectionId);
      res.writeHead(204).end();
    } else {
      res.writeHead(400).end('{}');
    }
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}

export interface Invocation {
  functionName: string;
  payload: unknown;
}

/**
 * Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`,
 * RequestResponse, or Event: queued until runQueued): checks the SigV4 signature for lambda in the region,
 * runs the function through `run`, and answers as Lambda does: 200 with the
 * result, or 200 with X-Amz-Function-Error when the function failed.
 */
export class LambdaInvokeStandIn {
  readonly invocations: Invocation[] = [];
  /** Asynchronous (Event) invocations accepted and not yet run. */
  readonly queued: Invocation[] = [];
  /** Event invocations run so far, with what each answered. */
  readonly ran: (Invocation & { outcome: unknown })[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  #listening?: Listening;

  private constructor(
    readonly region: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
    readonly run: (
      functionName: string,
      payload: unknown,
    ) => Promise<{ ok: true; result: unknown } | { ok: false; error: unknown }>,
  ) {
    this.check = checker(keyring, region, 'lambda');
  }

  readonly check: (request: ReceivedRequest) => SigV4Check;

  static async start(
    options: { region: string; keyring: Keyring; log?: RequestLog },
    run: LambdaInvokeStandIn['run'],
  ): Promise<LambdaInvokeStandIn> {
    const { region, keyring, log } = options;
    const api = new LambdaInvokeStandIn(region, keyring, log, run);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const match = /^\/2015-03-31\/functions\/([^/?]+)\/invocations$/.exec(request.url);
    if (request.method !== 'POST' || !match) {
      res.writeHead(404, { 'x-amzn-errortype': 'ResourceNotFoundException' }).end('{}');
      return;
    }
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, { 'x-amzn-errortype': 'InvalidSignatureException' }).end('{}');
      return;
    }
    const type = request.headers['x-amz-invocation-type'] ?? 'RequestResponse';
    if (type !== 'RequestResponse' && type !== 'Event') {
      res.writeHead(400).end(JSON.stringify({ message: `unexpected invocation type ${type}` }));
      return;
    }
    const functionName = decodeURIComponent(match[1] as string);
    const resource = functionName.startsWith('arn:')
      ? functionName
      : `arn:aws:lambda:${this.region}:${ACCOUNT_ID}:function:${functionName}`;
    const what = { action: 'lambda:InvokeFunction', resource, region: this.region };
    if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    const payload = JSON.parse(request.body.toString('utf8')) as unknown;
    if (type === 'Event') {
      // Lambda queues it and answers 202 at once; it runs when the test says
      // (runQueued), so its posts never interleave with another test's.
      this.queued.push({ functionName, payload });
      res.writeHead(202).end();
      return;
    }
    this.invocations.push({ functionName, payload });
    const outcome = await this.run(functionName, payload);
    if (outcome.ok) {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(outcome.result));
    } else {
      res
        .writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' })
        .end(JSON.stringify(outcome.error));
    }
  }

  /** Runs the queued Event invocations, oldest first, as Lambda's async queue would. */
  async runQueued(): Promise<void> {
    for (let next = this.queued.shift(); next; next = this.queued.shift()) {
      const outcome = await this.run(next.functionName, next.payload);
      this.ran.push({ ...next, outcome });
    }
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}

/**
 * SSM Parameter Store's GetParameter (issue 9: secrets by parameter): answers
 * the parameters it was given, decrypted, and ParameterNotFound otherwise.
 * Every request must be SigV4-signed for ssm in the region with the role's
 * session credentials; one that is not is refused (403) and recorded.
 */
export class SsmStandIn {
  readonly reads: string[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  #listening?: Listening;

  private constructor(
    readonly region: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
    readonly parameters: Record<string, string>,
  ) {
    this.check = checker(keyring, region, 'ssm');
  }

  readonly check: (request: ReceivedRequest) => SigV4Check;

  static async start(
    options: { region: string; keyring: Keyring; log?: RequestLog },
    parameters: Record<string, string>,
  ): Promise<SsmStandIn> {
    const { region, keyring, log } = options;
    const api = new SsmStandIn(region, keyring, log, parameters);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const json = { 'content-type': 'application/x-amz-json-1.1' };
    if (request.method !== 'POST' || request.headers['x-amz-target'] !== 'AmazonSSM.GetParameter') {
      res.writeHead(400, json).end(JSON.stringify({ __type: 'UnknownOperationException' }));
      return;
    }
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, json).end(JSON.stringify({ __type: 'InvalidSignatureException' }));
      return;
    }
    const { Name, WithDecryption } = JSON.parse(request.body.toString('utf8')) as {
      Name: string;
      WithDecryption?: boolean;
    };
    const resource = Name.startsWith('arn:')
      ? Name
      : `arn:aws:ssm:${this.region}:${ACCOUNT_ID}:parameter${Name.startsWith('/') ? '' : '/'}${Name}`;
    const what = { action: 'ssm:GetParameter', resource, region: this.region };
    if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    this.reads.push(Name);
    const value = this.parameters[Name];
    if (value === undefined || WithDecryption !== true) {
      res
        .writeHead(400, json)
        .end(
          JSON.stringify({ __type: 'ParameterNotFound', message: `Parameter ${Name} not found.` }),
        );
      return;
    }
    res
      .writeHead(200, json)
      .end(JSON.stringify({ Parameter: { Name, Type: 'SecureString', Value: value } }));
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}

/**
 * Secrets Manager's GetSecretValue: answers the secrets it was given (by
 * full ARN, as AWS names them: `…:secret:{name}-{6 random characters}`),
 * ResourceNotFoundException otherwise. Signed for secretsmanager in the
 * region by a session of the keyring, or refused (403) and recorded.
 */
export class SecretsManagerStandIn {
  readonly reads: string[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  readonly check: (request: ReceivedRequest) => SigV4Check;
  #listening?: Listening;

  private constructor(
    readonly region: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
    readonly secrets: Record<string, string>,
  ) {
    this.check = checker(keyring, region, 'secretsmanager');
  }

  static async start(
    options: { region: string; keyring: Keyring; log?: RequestLog },
    secrets: Record<string, string>,
  ): Promise<SecretsManagerStandIn> {
    const { region, keyring, log } = options;
    const api = new SecretsManagerStandIn(region, keyring, log, secrets);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const json = { 'content-type': 'application/x-amz-json-1.1' };
    if (
      request.method !== 'POST' ||
      request.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue'
    ) {
      res.writeHead(400, json).end(JSON.stringify({ __type: 'UnknownOperationException' }));
      return;
    }
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, json).end(JSON.stringify({ __type: 'InvalidSignatureException' }));
      return;
    }
    const { SecretId } = JSON.parse(request.body.toString('utf8')) as { SecretId: string };
    const what = {
      action: 'secretsmanager:GetSecretValue',
      resource: SecretId,
      region: this.region,
    };
    if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    this.reads.push(SecretId);
    const value = this.secrets[SecretId];
    if (value === undefined) {
      res
        .writeHead(400, json)
        .end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'not found' }));
      return;
    }
    res.writeHead(200, json).end(JSON.stringify({ ARN: SecretId, SecretString: value }));
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}

/** One entry EventBridge accepted: who sent it (by the session that signed), where, and its detail. */
export interface ReceivedEvent {
  stack: string;
  functionKey: string;
  source: string;
  detailType: string;
  /** The bus as the entry named it. */
  bus: string;
  /** The ARN IAM authorized the entry against. */
  busArn: string;
  detail: Record<string, unknown>;
}

/**
 * EventBridge's PutEvents (lifecycle events), for one region: the request's
 * shape is checked as `npm start`'s stand-in bus checks it
 * (scripts/local-bus.ts: 1-10 entries within 256 KB, each Detail a JSON
 * object), its SigV4 signature for `events` in the region with a session of
 * the keyring (else 403, recorded), and each entry is authorized as IAM
 * does: `events:PutEvents` on the ARN of the bus it names, in this region
 * and account, with its `events:source` and `events:detail-type`. One entry
 * refused refuses the request (403 AccessDeniedException).
 */
export class EventBridgeStandIn {
  readonly events: ReceivedEvent[] = [];
  /** Requests refused for their shape, with why. */
  readonly malformed: string[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  readonly check: (request: ReceivedRequest) => SigV4Check;
  #listening?: Listening;

  private constructor(
    readonly region: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
  ) {
    this.check = checker(keyring, region, 'events');
  }

  static async start(options: {
    region: string;
    keyring: Keyring;
    log?: RequestLog;
  }): Promise<EventBridgeStandIn> {
    const { region, keyring, log } = options;
    const api = new EventBridgeStandIn(region, keyring, log);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  /** The ARN IAM authorizes a PutEvents entry against: the bus it names, by name or ARN. */
  busArn(bus: string): string {
    return bus.startsWith('arn:')
      ? bus
      : `arn:aws:events:${this.region}:${ACCOUNT_ID}:event-bus/${bus}`;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const json = { 'content-type': 'application/x-amz-json-1.1' };
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, json).end(JSON.stringify({ __type: 'InvalidSignatureException' }));
      return;
    }
    const parsed = parsePutEvents(request);
    if ('error' in parsed) {
      this.malformed.push(parsed.error);
      res.writeHead(400, json).end(JSON.stringify({ __type: 'ValidationException' }));
      return;
    }
    const session = this.keyring.lookup(check.accessKeyId ?? '');
    // One decision per distinct bus, source and detail-type in the request.
    const asked = new Set<string>();
    for (const entry of parsed.entries) {
      const key = JSON.stringify([entry.EventBusName, entry.Source, entry.DetailType]);
      if (asked.has(key)) continue;
      asked.add(key);
      const what = {
        action: 'events:PutEvents',
        resource: this.busArn(entry.EventBusName),
        region: this.region,
        context: { 'events:source': entry.Source, 'events:detail-type': entry.DetailType },
      };
      if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    }
    for (const entry of parsed.entries)
      this.events.push({
        stack: session?.stack ?? '',
        functionKey: session?.functionKey ?? '',
        source: entry.Source,
        detailType: entry.DetailType,
        bus: entry.EventBusName,
        busArn: this.busArn(entry.EventBusName),
        detail: JSON.parse(entry.Detail) as Record<string, unknown>,
      });
    res.writeHead(200, json).end(
      JSON.stringify({
        FailedEntryCount: 0,
        Entries: parsed.entries.map(() => ({ EventId: randomUUID() })),
      }),
    );
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}

/** One message SQS accepted: who sent it (by the session that signed), the queue, its body and delay. */
export interface ReceivedSqsMessage {
  stack: string;
  functionKey: string;
  queueArn: string;
  body: string;
  delaySeconds: number;
}

/**
 * SQS SendMessage (the JSON protocol, AmazonSQS.SendMessage) for one region:
 * the shape checked as `npm start`'s stand-in queue checks it
 * (scripts/local-queue.ts parseSendMessage), the SigV4 signature for `sqs`
 * in the region with a session of the keyring (else 403, recorded), and the
 * request authorized as IAM does: `sqs:SendMessage` on the ARN of the queue
 * its QueueUrl names. Messages are kept, not delivered: the test hands them
 * to `ackTimeout` as the event source mapping would.
 */
export class SqsStandIn {
  readonly messages: ReceivedSqsMessage[] = [];
  readonly malformed: string[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  readonly check: (request: ReceivedRequest) => SigV4Check;
  #listening?: Listening;

  private constructor(
    readonly region: string,
    readonly keyring: Keyring,
    readonly log: RequestLog | undefined,
  ) {
    this.check = checker(keyring, region, 'sqs');
  }

  static async start(options: {
    region: string;
    keyring: Keyring;
    log?: RequestLog;
  }): Promise<SqsStandIn> {
    const api = new SqsStandIn(options.region, options.keyring, options.log);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const json = { 'content-type': 'application/x-amz-json-1.0' };
    const check = this.check(request);
    if (!check.ok) {
      this.signatureFailures.push({ url: request.url, check });
      res.writeHead(403, json).end(JSON.stringify({ __type: 'InvalidSignatureException' }));
      return;
    }
    const queueUrl = String(
      (JSON.parse(request.body.toString('utf8') || '{}') as { QueueUrl?: unknown }).QueueUrl ?? '',
    );
    const match =
      /^https:\/\/sqs\.([a-z0-9-]+)\.amazonaws\.com\/(\d{12})\/([A-Za-z0-9_-]{1,80})$/.exec(
        queueUrl,
      );
    const parsed = match
      ? parseSendMessage(request, queueUrl)
      : { error: `QueueUrl ${queueUrl} is not an SQS queue URL` };
    if ('error' in parsed || !match) {
      this.malformed.push('error' in parsed ? parsed.error : 'no queue');
      res.writeHead(400, json).end(JSON.stringify({ __type: 'InvalidParameterValue' }));
      return;
    }
    const queueArn = `arn:aws:sqs:${match[1]}:${match[2]}:${match[3]}`;
    const what = { action: 'sqs:SendMessage', resource: queueArn, region: this.region };
    if (!(await authorized(this.log, check, this.keyring, what, res))) return;
    const session = this.keyring.lookup(check.accessKeyId ?? '');
    this.messages.push({
      stack: session?.stack ?? '',
      functionKey: session?.functionKey ?? '',
      queueArn,
      body: parsed.body,
      delaySeconds: parsed.delaySeconds,
    });
    res.writeHead(200, json).end(JSON.stringify({ MessageId: randomUUID(), MD5OfMessageBody: '' }));
  }

  async stop(): Promise<void> {
    if (this.#listening) await close(this.#listening.server);
  }
}
