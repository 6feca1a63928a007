import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ReceivedRequest, type SigV4Check, verifySigV4 } from './sigv4.js';

/**
 * A stand-in for Amazon SNS mobile push (the query protocol: form POSTs,
 * `Action=…&Version=2010-03-31`, XML answers). Every request's SigV4
 * signature is recomputed (./sigv4.ts) and must be for `sns` in the region;
 * each action's parameters are checked as SNS checks them. It keeps platform
 * endpoints (per platform application, one per token, as SNS does), and
 * answers by script: an endpoint disabled (EndpointDisabled), deleted
 * (NotFound), or the next calls throttled (Throttling) or failing (500).
 */

export interface SnsEndpoint {
  arn: string;
  applicationArn: string;
  token: string;
  enabled: boolean;
  customUserData: string;
}

export interface SnsPublished {
  targetArn: string;
  platformKey: string;
  /** The platform's message, parsed (`APNS` / `APNS_SANDBOX` / `GCM` value). */
  payload: unknown;
  attributes: Record<string, string>;
}

export interface SnsStandInOptions {
  region: string;
  /** The secret of an access key id (a signature by anything else is refused). */
  secretFor: (accessKeyId: string) => string | undefined;
  /** Platform application ARNs that exist. */
  applications: string[];
  /** The session token a key's requests must carry (x-amz-security-token), when it has one. */
  sessionToken?: (accessKeyId: string) => string | undefined;
  /** IAM's say on each signed request (the sandbox); absent: all allowed. */
  authorize?: (check: SigV4Check, action: string, resource: string) => boolean | Promise<boolean>;
}

const NS = 'http://sns.amazonaws.com/doc/2010-03-31/';
const xmlEscape = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const PLATFORM_KEY: Record<string, string> = {
  APNS: 'APNS',
  APNS_SANDBOX: 'APNS_SANDBOX',
  GCM: 'GCM',
};

export class SnsStandIn {
  readonly endpoints = new Map<string, SnsEndpoint>();
  readonly published: SnsPublished[] = [];
  /** Every action received, signed or not, in order. */
  readonly calls: { action: string; params: Record<string, string> }[] = [];
  readonly signatureFailures: { url: string; check: SigV4Check }[] = [];
  /** Requests refused for their shape (an error in the code under test). */
  readonly malformed: string[] = [];
  /** Errors to answer the next calls of an action with, in order. */
  readonly #scripted = new Map<string, { status: number; code: string }[]>();
  #server?: Server;
  #port = 0;

  private constructor(readonly options: SnsStandInOptions) {}

  static async start(options: SnsStandInOptions): Promise<SnsStandIn> {
    const sns = new SnsStandIn(options);
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (p: Buffer) => parts.push(p));
      req.on('end', () => {
        const request: ReceivedRequest = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(parts),
        };
        sns
          .#handle(request, res)
          .catch((error: unknown) =>
            sns.#error(res, 500, 'InternalError', `stand-in failed: ${String(error)}`),
          );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sns.#server = server;
    sns.#port = (server.address() as AddressInfo).port;
    return sns;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The next `count` calls of `action` are answered with this error. */
  fail(action: string, count: number, error: { status: number; code: string }): void {
    this.#scripted.set(action, [
      ...(this.#scripted.get(action) ?? []),
      ...Array(count).fill(error),
    ]);
  }

  /** The next `count` Publish calls to this endpoint are answered with this error. */
  failTarget(arn: string, count: number, error: { status: number; code: string }): void {
    this.fail(`Publish:${arn}`, count, error);
  }

  clearFailures(): void {
    this.#scripted.clear();
  }

  /** As SNS does when APNs/FCM reports the token invalid. */
  disable(arn: string): void {
    const endpoint = this.endpoints.get(arn);
    if (endpoint) endpoint.enabled = false;
  }

  endpointFor(token: string): SnsEndpoint | undefined {
    return [...this.endpoints.values()].find((e) => e.token === token);
  }

  #error(res: ServerResponse, status: number, code: string, message: string): void {
    res
      .writeHead(status, { 'content-type': 'text/xml' })
      .end(
        `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
  }

  #ok(res: ServerResponse, action: string, result: string): void {
    res
      .writeHead(200, { 'content-type': 'text/xml' })
      .end(
        `<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
      );
  }

  /** `Attributes.entry.N.key/value` (or `MessageAttributes.entry.N.Name/Value.StringValue`) as a map. */
  static entries(params: Record<string, string>, prefix: string, key: string, value: string) {
    const out: Record<string, string> = {};
    for (let i = 1; params[`${prefix}.entry.${i}.${key}`] !== undefined; i++)
      out[params[`${prefix}.entry.${i}.${key}`] as string] =
        params[`${prefix}.entry.${i}.${value}`] ?? '';
    return out;
  }

  async #handle(request: ReceivedRequest, res: ServerResponse): Promise<void> {
    const { region } = this.options;
    if (request.method !== 'POST' || request.url !== '/')
      return this.#error(res, 400, 'InvalidAction', `${request.method} ${request.url}`);
    if (!String(request.headers['content-type']).startsWith('application/x-www-form-urlencoded'))
      return this.#error(res, 400, 'MalformedQueryString', 'not a form POST');
    const params = Object.fromEntries(new URLSearchParams(request.body.toString('utf8')));
    const action = params['Action'] ?? '';
    this.calls.push({ action, params });
    const check = verifySigV4(request, this.options.secretFor);
    if (!check.ok || check.service !== 'sns' || check.region !== region) {
      this.signatureFailures.push({
        url: request.url,
        check: check.ok
          ? { ...check, ok: false, reason: `signed for ${check.service} in ${check.region}` }
          : check,
      });
      return this.#error(
        res,
        403,
        'SignatureDoesNotMatch',
        check.reason ?? 'wrong service or region',
      );
    }
    const token = this.options.sessionToken?.(check.accessKeyId ?? '');
    if (token !== undefined && request.headers['x-amz-security-token'] !== token) {
      this.signatureFailures.push({
        url: request.url,
        check: { ...check, ok: false, reason: 'no session token (x-amz-security-token)' },
      });
      return this.#error(res, 403, 'InvalidClientTokenId', 'no session token');
    }
    if (params['Version'] !== '2010-03-31') {
      this.malformed.push(`${action}: Version ${params['Version']}`);
      return this.#error(res, 400, 'InvalidParameter', 'Version must be 2010-03-31');
    }
    const bad = (message: string) => {
      this.malformed.push(`${action}: ${message}`);
      this.#error(res, 400, 'InvalidParameter', `Invalid parameter: ${message}`);
    };
    const resource =
      action === 'CreatePlatformEndpoint'
        ? (params['PlatformApplicationArn'] ?? '')
        : (params['EndpointArn'] ?? params['TargetArn'] ?? '');
    if (this.options.authorize && !(await this.options.authorize(check, `sns:${action}`, resource)))
      return this.#error(
        res,
        403,
        'AuthorizationError',
        `not authorized to perform sns:${action} on ${resource}`,
      );
    const scripted =
      (action === 'Publish'
        ? this.#scripted.get(`Publish:${params['TargetArn']}`)?.shift()
        : undefined) ?? this.#scripted.get(action)?.shift();
    if (scripted)
      return this.#error(res, scripted.status, scripted.code, `scripted ${scripted.code}`);

    switch (action) {
      case 'CreatePlatformEndpoint': {
        const app = params['PlatformApplicationArn'] ?? '';
        const token = params['Token'] ?? '';
        if (!this.options.applications.includes(app))
          return this.#error(res, 404, 'NotFound', 'PlatformApplication does not exist');
        if (!token) return bad('Token Reason: is required');
        const userData = params['CustomUserData'] ?? '';
        const existing = [...this.endpoints.values()].find(
          (e) => e.applicationArn === app && e.token === token,
        );
        if (existing) {
          // SNS: idempotent for identical attributes, else names the endpoint.
          if (existing.customUserData !== userData || !existing.enabled)
            return this.#error(
              res,
              400,
              'InvalidParameter',
              `Invalid parameter: Token Reason: Endpoint ${existing.arn} already exists with the same Token, but different attributes.`,
            );
          return this.#ok(res, action, `<EndpointArn>${existing.arn}</EndpointArn>`);
        }
        const arn = `${app.replace(':app/', ':endpoint/')}/${randomUUID()}`;
        this.endpoints.set(arn, {
          arn,
          applicationArn: app,
          token,
          enabled: true,
          customUserData: userData,
        });
        return this.#ok(res, action, `<EndpointArn>${arn}</EndpointArn>`);
      }
      case 'SetEndpointAttributes': {
        const endpoint = this.endpoints.get(params['EndpointArn'] ?? '');
        if (!endpoint) return this.#error(res, 404, 'NotFound', 'Endpoint does not exist');
        const attributes = SnsStandIn.entries(params, 'Attributes', 'key', 'value');
        if (Object.keys(attributes).length === 0) return bad('Attributes Reason: is required');
        for (const name of Object.keys(attributes))
          if (!['Enabled', 'Token', 'CustomUserData'].includes(name))
            return bad(`unknown attribute ${name}`);
        if (attributes['Enabled'] !== undefined)
          endpoint.enabled = attributes['Enabled'] === 'true';
        if (attributes['Token'] !== undefined) endpoint.token = attributes['Token'];
        if (attributes['CustomUserData'] !== undefined)
          endpoint.customUserData = attributes['CustomUserData'];
        return this.#ok(res, action, '');
      }
      case 'Publish': {
        const endpoint = this.endpoints.get(params['TargetArn'] ?? '');
        if (!endpoint) return this.#error(res, 404, 'NotFound', 'Endpoint does not exist');
        if (!endpoint.enabled)
          return this.#error(res, 400, 'EndpointDisabled', 'Endpoint is disabled');
        if (params['MessageStructure'] !== 'json') return bad('MessageStructure must be json');
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(params['Message'] ?? '') as Record<string, unknown>;
        } catch {
          return bad('Message Reason: not JSON');
        }
        if (typeof message['default'] !== 'string')
          return bad('Message Reason: no "default" entry');
        const platform = /:app\/([A-Z_]+)\//.exec(endpoint.applicationArn)?.[1] ?? '';
        const key = PLATFORM_KEY[platform] ?? '';
        const value = message[key];
        if (typeof value !== 'string')
          return bad(`Message Reason: no ${key} entry (a JSON string)`);
        let payload: unknown;
        try {
          payload = JSON.parse(value);
        } catch {
          return bad(`Message Reason: ${key} is not a JSON string`);
        }
        if (Buffer.byteLength(value) > 4096) return bad(`Message Reason: ${key} is over 4 KB`);
        const attributes = SnsStandIn.entries(
          params,
          'MessageAttributes',
          'Name',
          'Value.StringValue',
        );
        this.published.push({ targetArn: endpoint.arn, platformKey: key, payload, attributes });
        return this.#ok(res, action, `<MessageId>${randomUUID()}</MessageId>`);
      }
      case 'DeleteEndpoint': {
        // Idempotent, as SNS: deleting an endpoint that is gone succeeds.
        if (!params['EndpointArn']) return bad('EndpointArn Reason: is required');
        this.endpoints.delete(params['EndpointArn']);
        return this.#ok(res, action, '');
      }
      default:
        return this.#error(res, 400, 'InvalidAction', `unknown action ${action}`);
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
