import type { Operation, Reply, Transport } from './types.js';

/** Signs one request (SigV4 for the IAM-authorized API); returns the headers to send. */
export type RequestSigner = (request: {
  method: 'POST';
  url: URL;
  headers: Record<string, string>;
  body: string;
}) => Promise<Record<string, string>>;

export interface HttpTransportOptions {
  /** The API's base URL: `https://<id>.execute-api.<region>.amazonaws.com/<stage>`, or `http://localhost:3000`. */
  url: string;
  /** `awsIamSigner()` for the deployed API (AWS_IAM); none locally. */
  sign?: RequestSigner;
  fetch?: typeof fetch;
  /** Per attempt (default 30 s, just over API Gateway's 29 s). */
  timeoutMs?: number;
}

/** The HTTP API with `fetch` (Node 18+): nothing else to install. */
export function httpTransport(options: HttpTransportOptions): Transport {
  const doFetch = options.fetch ?? fetch;
  const base = options.url.replace(/\/+$/, '');
  return {
    async call(operation: Operation, body: object): Promise<Reply> {
      const url = new URL(`${base}/${operation}`);
      const text = JSON.stringify(body);
      let headers: Record<string, string> = { 'content-type': 'application/json' };
      if (options.sign)
        headers = {
          ...headers,
          ...(await options.sign({ method: 'POST', url, headers, body: text })),
        };
      let response: Response;
      try {
        response = await doFetch(url, {
          method: 'POST',
          headers,
          body: text,
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      } catch (error) {
        return {
          ok: false,
          retryable: true,
          code: 'network',
          message: `POST ${url.pathname}: ${(error as Error).message}`,
          cause: error,
        };
      }
      const reply = await response.text();
      let value: unknown;
      try {
        value = JSON.parse(reply);
      } catch {
        value = undefined;
      }
      if (response.ok && value !== undefined) return { ok: true, value };
      const error = value as
        | { error?: { code?: unknown; message?: unknown }; message?: unknown }
        | undefined;
      const status = response.status;
      return {
        ok: false,
        retryable: status === 429 || status >= 500,
        code: typeof error?.error?.code === 'string' ? error.error.code : `http_${status}`,
        // API Gateway's own refusals (403 from IAM) say `{"message": …}`.
        message: String(
          error?.error?.message ?? error?.message ?? (reply.slice(0, 300) || response.statusText),
        ),
        status,
      };
    },
  };
}
