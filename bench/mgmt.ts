import type { ChildProcess } from 'node:child_process';
import { forkEntry, nextMessage, stopChild } from './common.js';

export interface MgmtStats {
  delivered: number;
  gone: number;
  bytes: number;
  /** Date.now() of the first and last delivery since the last reset (0: none). */
  firstAt: number;
  lastAt: number;
}

/** Handle on the fake management API (bench/mgmt-server.ts, its own process). */
export interface MgmtServer {
  /** What a connection record stores as its endpoint: http://127.0.0.1:<port> */
  endpoint: string;
  register(ids: readonly string[]): Promise<void>;
  reset(): Promise<void>;
  clear(): Promise<void>;
  stats(): Promise<MgmtStats>;
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
    stop: () => stopChild(child),
  };
}
