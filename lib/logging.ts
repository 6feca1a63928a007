import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';

/**
 * Logs that never carry secrets or payloads.
 *
 * Errors are where they leak: ioredis attaches the failed command with its
 * arguments (an EVAL's Lua source, key names, the message being published),
 * jose attaches the token's claims, the AWS SDK its raw response. Powertools
 * copies every enumerable field of a logged error, so this formatter keeps
 * only a whitelist: name, message and stack (credentials in URLs masked),
 * location, a few scalar codes, and causes formatted the same way.
 */

const MAX_MESSAGE = 500;
/** Scalar fields that describe a failure without echoing its input. */
const SAFE_FIELDS = ['code', 'errno', 'syscall', 'status', 'statusCode', '$fault'] as const;

/** Masks `user:password@` in URLs and bounds the length. */
export function scrub(text: string): string {
  const masked = text.replace(/(\w+:\/\/)[^/@\s]*@/g, '$1***@');
  return masked.length > MAX_MESSAGE ? `${masked.slice(0, MAX_MESSAGE)}…` : masked;
}

export class SafeLogFormatter extends LogFormatter {
  override formatAttributes(
    attributes: UnformattedAttributes,
    additionalLogAttributes: LogAttributes,
  ): LogItem {
    return new LogItem({
      attributes: {
        level: attributes.logLevel,
        message: attributes.message,
        timestamp: this.formatTimestamp(attributes.timestamp),
        service: attributes.serviceName,
        cold_start: attributes.lambdaContext?.coldStart,
        function_arn: attributes.lambdaContext?.invokedFunctionArn,
        function_memory_size: attributes.lambdaContext?.memoryLimitInMB,
        function_name: attributes.lambdaContext?.functionName,
        function_request_id: attributes.lambdaContext?.awsRequestId,
        sampling_rate: attributes.sampleRateValue,
        xray_trace_id: attributes.xRayTraceId,
      },
    }).addAttributes(additionalLogAttributes);
  }

  override formatError(error: Error): LogAttributes {
    return safeError(error, this.getCodeLocation(error.stack), 0);
  }
}

function safeError(error: Error, location: string, depth: number): LogAttributes {
  const message = scrub(String(error.message ?? ''));
  // The stack's first line repeats the message: rebuild it from the scrubbed one.
  const frames = typeof error.stack === 'string' ? error.stack.split('\n').slice(1) : [];
  const formatted: LogAttributes = {
    name: String(error.name ?? 'Error'),
    location,
    message,
    stack: [`${error.name}: ${message}`, ...frames].join('\n'),
  };
  const fields = error as unknown as Record<string, unknown>;
  for (const key of SAFE_FIELDS) {
    const value = fields[key];
    if (typeof value === 'string' || typeof value === 'number') formatted[key] = value;
  }
  const status = (fields['$metadata'] as { httpStatusCode?: unknown } | undefined)?.httpStatusCode;
  if (typeof status === 'number') formatted['httpStatusCode'] = status;
  if (depth < 3 && error.cause instanceof Error) {
    formatted['cause'] = safeError(error.cause, location, depth + 1);
  }
  if (depth < 3 && Array.isArray(fields['errors'])) {
    formatted['errors'] = (fields['errors'] as unknown[])
      .slice(0, 5)
      .map((e) => (e instanceof Error ? safeError(e, location, depth + 1) : 'non-error'));
  }
  return formatted;
}

/** The logger every function uses. Powertools reads its level from POWERTOOLS_LOG_LEVEL. */
export const createLogger = (): Logger =>
  new Logger({ serviceName: 'pushwire', logFormatter: new SafeLogFormatter() });
