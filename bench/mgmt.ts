import type { ChildProcess } from 'node:child_process';
import { forkEntry, nextMessage, stopChild } from './common.js';

export interface MgmtStats {
  delivered: number;
  gone: number;
  /** Connections that got at least one post (delivered also counts doubles). */
  distinct: number;
  /** Posts answered 429 (the account's bucket was empty). */
  throttled: number;
  /** DELETEs: connections closed because a post to them finally failed. */
  closed: number;
  bytes: number;
  /** Date.now() of the first and last delivery since the last reset (0: none). */
  firstAt: number;
  lastAt: number;
}

export interface MgmtLimits {
  /** Posts per second the account allows (0: no throttle). */
  rate: number;
  /** Tokens its bucket holds. */
  burst: number;
  /** Median latency of a post, ms (0: answered at once). */
  latencyMs: number;
  /** Shape of the lognormal latency (0.5: p99 about 3.2x the median). */
  sigma?: number;
}

/** Handle on the fake management API (bench/mgmt-server.ts, its own process). */
export interface MgmtServer {
  /** What a connection record stores as its endpoint: http://127.0.0.1:<port> */
  endpoint: string;
  register(ids: readonly string[]): Promise<void>;
  reset(): Promise<void>;
  clear(): Promise<void>;
  stats(): Promise<MgmtStats>;
  /** The account's throttle and the posts' latency (bench/mgmt-server.ts); zeros turn them off. */
  limits(limits: MgmtLimits): Promise<void>;
  stop(): Promise<void>;
}

export async function startMgmtServer(): Promise<MgmtServer> {
  const child: ChildProcess = forkEntry('mgmt-server');
  const { port } = await nextMessage<{ type: 'ready'; port: number }>(child, 'ready', 10_000);
  const endpoint = `http://127.0.0.1:${port}`;
  const call = async (path: string, body?: string) => {
    const response = await fetch(`${endpoint}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      ...(body !== undefined && { body }),
    });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json() as Promise<unknown>;
  };
  return {
    endpoint,
    async register(ids) {
      for (let i = 0; i < ids.length; i += 20_000) {
        await call('/_admin/register', ids.slice(i, i + 20_000).join('\n'));
      }
    },
    reset: async () => {
      await call('/_admin/reset', '');
    },
    clear: async () => {
      await call('/_admin/clear', '');
    },
    stats: async () => (await call('/_admin/stats')) as MgmtStats,
    limits: async (limits) => {
      await call('/_admin/limits', JSON.stringify(limits));
    },
    stop: () => stopChild(child),
  };
}
