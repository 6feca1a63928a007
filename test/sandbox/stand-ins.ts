import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type LocalBus, startLocalBus } from '../../scripts/local-bus.js';
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

/** Checks a request is SigV4-signed with `credentials` for `service` in `region`. */
function checker(
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
  region: string,
  service: string,
) {
  return (request: ReceivedRequest): SigV4Check => {
    const check = verifySigV4(request, (id) =>
      id === credentials.accessKeyId ? credentials.secretAccessKey : undefined,
    );
    if (!check.ok) return check;
    if (check.region !== region || check.service !== service)
      return { ...check, ok: false, reason: `signed for ${check.service} in ${check.region}` };
    if (request.headers['x-amz-security-token'] !== credentials.sessionToken)
      return { ...check, ok: false, reason: 'no session token (x-amz-security-token)' };
    return check;
  };
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

  constructor(
    readonly stage: string,
    readonly check: (request: ReceivedRequest) => SigV4Check,
  ) {}

  static async start(
    stage: string,
    region: string,
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
  ): Promise<ManagementApiStandIn> {
    const api = new ManagementApiStandIn(stage, checker(credentials, region, 'execute-api'));
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
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

  #handle(request: ReceivedRequest, res: ServerResponse): void {
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
 * RequestResponse): checks the SigV4 signature for lambda in the region,
 * runs the function through `run`, and answers as Lambda does: 200 with the
 * result, or 200 with X-Amz-Function-Error when the function failed.
 */
export class LambdaInvokeStandIn {
  readonly invocations: Invocation[] = [];
  readonly signatureFailures: SignatureFailure[] = [];
  #listening?: Listening;

  private constructor(
    readonly check: (request: ReceivedRequest) => SigV4Check,
    readonly run: (
      functionName: string,
      payload: unknown,
    ) => Promise<{ ok: true; result: unknown } | { ok: false; error: unknown }>,
  ) {}

  static async start(
    region: string,
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
    run: LambdaInvokeStandIn['run'],
  ): Promise<LambdaInvokeStandIn> {
    const api = new LambdaInvokeStandIn(checker(credentials, region, 'lambda'), run);
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
    if (type !== 'RequestResponse') {
      res.writeHead(400).end(JSON.stringify({ message: `unexpected invocation type ${type}` }));
      return;
    }
    const functionName = decodeURIComponent(match[1] as string);
    const payload = JSON.parse(request.body.toString('utf8')) as unknown;
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
    readonly check: (request: ReceivedRequest) => SigV4Check,
    readonly parameters: Record<string, string>,
  ) {}

  static async start(
    region: string,
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
    parameters: Record<string, string>,
  ): Promise<SsmStandIn> {
    const api = new SsmStandIn(checker(credentials, region, 'ssm'), parameters);
    api.#listening = await listen((request, res) => api.#handle(request, res));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#listening?.port}`;
  }

  #handle(request: ReceivedRequest, res: ServerResponse): void {
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
 * EventBridge's PutEvents (lifecycle events): the stand-in bus of `npm
 * start` (scripts/local-bus.ts: request shape, 1-10 entries within 256 KB,
 * each Detail a JSON object), with every request's SigV4 signature checked
 * for `events` in the region with the role's session credentials; one that
 * is not is refused (403) and recorded.
 */
export class EventBridgeStandIn {
  private constructor(
    readonly bus: LocalBus,
    readonly signatureFailures: string[],
  ) {}

  static async start(
    region: string,
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
  ): Promise<EventBridgeStandIn> {
    const check = checker(credentials, region, 'events');
    const failures: string[] = [];
    const bus = await startLocalBus({
      verify: (request) => {
        const result = check(request);
        if (result.ok) return undefined;
        failures.push(result.reason ?? 'signature');
        return result.reason ?? 'signature';
      },
    });
    return new EventBridgeStandIn(bus, failures);
  }

  get url(): string {
    return this.bus.url;
  }

  /** Accepted entries with their Detail parsed. */
  get events(): {
    source: string;
    detailType: string;
    bus: string;
    detail: Record<string, unknown>;
  }[] {
    return this.bus.received.map((e) => ({
      source: e.Source,
      detailType: e.DetailType,
      bus: e.EventBusName,
      detail: JSON.parse(e.Detail) as Record<string, unknown>,
    }));
  }

  stop(): Promise<void> {
    return this.bus.close();
  }
}
