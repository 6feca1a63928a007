import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, type RedisServer, startRedisServer } from '../../scripts/redis-server.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** redis://127.0.0.1:<port> of each master. */
  urls: string[];
  ports: number[];
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Starts a real local Redis Cluster of three masters (no replicas), each a
 * private `redis-server` with its own temporary directory, joins them with
 * `redis-cli --cluster create`, and resolves once every node reports
 * `cluster_state:ok`. The bus port is picked explicitly (`--cluster-port`):
 * the default port + 10000 may be taken, or out of range for an ephemeral port.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await tryStart(masters);
    } catch (error) {
      // A free port can be taken by someone else between freePort() and bind.
      if (attempt >= 3) throw error;
    }
  }
}

async function tryStart(masters: number): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const busPort = await freePort();
      servers.push(
        await startRedisServer([
          '--cluster-enabled',
          'yes',
          // Relative to the server's own --dir (a fresh temporary directory).
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
          '--cluster-port',
          String(busPort),
        ]),
      );
    }
    const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 60_000 },
    );
    await waitForClusterOk(servers.map((s) => s.port));
    return { urls: servers.map((s) => s.url), ports: servers.map((s) => s.port), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitForClusterOk(ports: number[], timeoutMs = 30_000): Promise<void> {
  const clients = ports.map((port) => new Redis({ port, host: '127.0.0.1', lazyConnect: true }));
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO') as Promise<string>));
      if (infos.every((info) => /^cluster_state:ok\r?$/m.test(info))) return;
      if (Date.now() > deadline) throw new Error(`cluster not ok:\n${infos.join('\n---\n')}`);
      await sleep(50);
    }
  } finally {
    for (const c of clients) c.disconnect();
  }
}
