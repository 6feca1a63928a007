import { connect, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
}

/**
 * A TCP proxy between WebSocket clients and serverless-offline that can break
 * the connections through it the ways networks do, which neither side can
 * fake: both ends reset (a lost network), only the client's end reset while
 * the server keeps a half-open socket it still posts to (a phone in a tunnel),
 * or everything silently stalled (no bytes, no close: only a missing pong shows it).
 */
export class ChaosProxy {
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  /** Server ends left open by ghost(). */
  readonly #ghosts = new Set<Socket>();
  port = 0;

  private constructor(target: number) {
    this.#server = createServer((client) => {
      const upstream = connect(target, 'localhost');
      const pair = { client, upstream };
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const end = (other: Socket) => () => {
        this.#pairs.delete(pair);
        other.destroy();
      };
      client.on('close', end(upstream));
      upstream.on('close', end(client));
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
  }

  static async start(target: number): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, resolve));
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets both ends of every connection (TCP RST): both sides see it at once. */
  reset(): number {
    const pairs = [...this.#pairs];
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    return pairs.length;
  }

  /**
   * Resets the client's end only. The server's end stays open and swallows
   * whatever is posted to it, so those messages are lost on the wire and only a
   * resume brings them back; it closes when the server gives up on it.
   */
  ghost(): number {
    const pairs = [...this.#pairs];
    for (const pair of pairs) {
      this.#pairs.delete(pair);
      const { client, upstream } = pair;
      upstream.unpipe(client);
      client.unpipe(upstream);
      upstream.removeAllListeners('close');
      client.removeAllListeners('close');
      this.#ghosts.add(upstream);
      upstream.once('close', () => this.#ghosts.delete(upstream));
      upstream.resume();
      client.resetAndDestroy();
    }
    return pairs.length;
  }

  /** Stops forwarding in both directions, with every socket left open. */
  stall(): number {
    const pairs = [...this.#pairs];
    for (const { client, upstream } of pairs) {
      upstream.unpipe(client);
      client.unpipe(upstream);
      upstream.resume();
      client.resume();
    }
    return pairs.length;
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    for (const upstream of this.#ghosts) upstream.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
