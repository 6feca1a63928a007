import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  type CredentialsProvider,
  createSigner,
  regionalEndpoint,
  signedPost,
} from '../aws/signing.js';

/**
 * Amazon SNS mobile push through the query protocol (form-encoded POST,
 * `Action=…&Version=2010-03-31`, XML answers), each call SigV4-signed by the
 * project's one signer (lib/aws/). Only the four calls push needs:
 * CreatePlatformEndpoint, SetEndpointAttributes, Publish, DeleteEndpoint.
 */

export class SnsError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(`SNS ${code}: ${message}`);
    this.name = 'SnsError';
    this.code = code;
    this.status = status;
  }
  /** Worth another try: throttled, or SNS's own failure. */
  get retryable(): boolean {
    return (
      this.status >= 500 ||
      this.status === 429 ||
      /^(Throttl|KMSThrottling|InternalError|ServiceUnavailable)/.test(this.code)
    );
  }
  /** The endpoint is no more: the device must be forgotten. */
  get gone(): boolean {
    return this.code === 'EndpointDisabled' || this.code === 'NotFound';
  }
}

export interface SnsOptions {
  region: string;
  credentials: CredentialsProvider;
  /** Default: the region's public endpoint. Tests point it at the stand-in. */
  endpoint?: string;
  timeoutMs?: number;
}

export type SnsCall = (action: string, params: Record<string, string>) => Promise<string>;

/** Decodes the five XML entities SNS escapes text with. */
const unescapeXml = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');

/** The text of the first `<name>` element of an XML answer. */
export const xmlField = (xml: string, name: string): string | undefined => {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match ? unescapeXml(match[1] as string) : undefined;
};

/** One signed SNS query call: the XML answer, or an SnsError. */
export function snsCaller(options: SnsOptions): SnsCall {
  const url = new URL(options.endpoint ?? regionalEndpoint('sns', options.region));
  const agent = new (url.protocol === 'https:' ? HttpsAgent : HttpAgent)({ keepAlive: true });
  const signer = createSigner('sns', options.region, options.credentials);
  const path = url.pathname || '/';
  return async (action, params) => {
    const body = Buffer.from(
      new URLSearchParams({ Action: action, Version: '2010-03-31', ...params }).toString(),
    );
    const response = await signedPost(
      signer,
      url,
      path,
      { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
      { agent, timeoutMs: options.timeoutMs ?? 5_000 },
    );
    const xml = response.body.toString('utf8');
    if (response.status >= 200 && response.status < 300) return xml;
    throw new SnsError(
      xmlField(xml, 'Code') ?? `HTTP${response.status}`,
      response.status,
      (xmlField(xml, 'Message') ?? `HTTP ${response.status}`).slice(0, 300),
    );
  };
}

/** The calls on platform endpoints pushwire makes. */
export class SnsMobile {
  readonly #call: SnsCall;
  constructor(call: SnsCall) {
    this.#call = call;
  }

  /**
   * The platform endpoint for a device token (CreatePlatformEndpoint is
   * idempotent for the same token and attributes). When one exists for the
   * token with other attributes (SNS answers InvalidParameter naming it), or
   * it was disabled (a token APNs/FCM once refused, now registered again),
   * it is updated and enabled.
   */
  async endpointFor(applicationArn: string, token: string, userData: string): Promise<string> {
    let arn: string;
    try {
      const xml = await this.#call('CreatePlatformEndpoint', {
        PlatformApplicationArn: applicationArn,
        Token: token,
        CustomUserData: userData,
      });
      const created = xmlField(xml, 'EndpointArn');
      if (!created) throw new SnsError('MalformedAnswer', 200, 'no EndpointArn in the answer');
      arn = created;
    } catch (error) {
      const existing =
        error instanceof SnsError && error.code === 'InvalidParameter'
          ? /Endpoint (arn:\S+) already exists/.exec(error.message)?.[1]
          : undefined;
      if (!existing) throw error;
      arn = existing;
    }
    // Enabled again (SNS disables an endpoint whose token the platform refused) and owned by this user.
    await this.#call('SetEndpointAttributes', {
      EndpointArn: arn,
      'Attributes.entry.1.key': 'Enabled',
      'Attributes.entry.1.value': 'true',
      'Attributes.entry.2.key': 'Token',
      'Attributes.entry.2.value': token,
      'Attributes.entry.3.key': 'CustomUserData',
      'Attributes.entry.3.value': userData,
    });
    return arn;
  }

  /** Publishes a per-platform JSON message (MessageStructure=json); the MessageId. */
  async publish(
    endpointArn: string,
    message: Record<string, string>,
    attributes: Record<string, string> = {},
  ): Promise<string> {
    const params: Record<string, string> = {
      TargetArn: endpointArn,
      MessageStructure: 'json',
      Message: JSON.stringify(message),
    };
    Object.entries(attributes).forEach(([name, value], i) => {
      params[`MessageAttributes.entry.${i + 1}.Name`] = name;
      params[`MessageAttributes.entry.${i + 1}.Value.DataType`] = 'String';
      params[`MessageAttributes.entry.${i + 1}.Value.StringValue`] = value;
    });
    const xml = await this.#call('Publish', params);
    return xmlField(xml, 'MessageId') ?? '';
  }

  /** Deletes a platform endpoint; deleting one already gone succeeds (SNS's own rule). */
  async deleteEndpoint(endpointArn: string): Promise<void> {
    await this.#call('DeleteEndpoint', { EndpointArn: endpointArn });
  }
}
