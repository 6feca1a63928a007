import type { FanoutLogger } from '../../lib/delivery/fanout.js';
import type { ConnectionRegistry } from '../../lib/registry/types.js';

/**
 * A hand-written fake of the registry port (dependency injection, not a Redis
 * mock): it answers only with the methods a test gives it, records every call
 * by name with its arguments, and throws on any other method, so a test fails
 * when the code under test reaches for something it should not.
 */
export function fakeRegistry(impl: Partial<ConnectionRegistry> = {}) {
  const calls: { method: string; args: unknown[] }[] = [];
  const registry = new Proxy({} as ConnectionRegistry, {
    get: (_target, property) => {
      const method = String(property);
      return (...args: unknown[]) => {
        calls.push({ method, args });
        const implementation = impl[method as keyof ConnectionRegistry] as
          | ((...a: unknown[]) => unknown)
          | undefined;
        if (!implementation) throw new Error(`unexpected call to registry.${method}`);
        return implementation(...args);
      };
    },
  });
  return { registry, calls, methods: () => calls.map((c) => c.method) };
}

/** A fan-out logger that keeps its warnings. */
export function recordingLogger() {
  const warnings: { message: string; extra: Record<string, unknown> }[] = [];
  const logger: FanoutLogger = {
    warn: (message, extra) => {
      warnings.push({ message, extra });
    },
  };
  return { logger, warnings };
}
