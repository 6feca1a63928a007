import type { Cluster, Redis, Result } from 'ioredis';
import admitLua from './scripts/admit.lua';
import attachLua from './scripts/attach.lua';
import beginResumeLua from './scripts/begin-resume.lua';
import closeLua from './scripts/close.lua';
import endpointLua from './scripts/endpoint.lua';
import positionLua from './scripts/position.lua';
import presenceLua from './scripts/presence.lua';
import publishLua from './scripts/publish.lua';
import refreshLua from './scripts/refresh.lua';
import renewLua from './scripts/renew.lua';
import rescueLua from './scripts/rescue.lua';
import resumeLua from './scripts/resume.lua';
import sweepLua from './scripts/sweep.lua';

/**
 * Registers our Lua scripts on a client. ioredis sends EVALSHA and falls back
 * to EVAL on NOSCRIPT, so a failover to a fresh node is handled for us.
 */
export function defineScripts(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).pwPublish === 'function') return;
  redis.defineCommand('pwPublish', { numberOfKeys: 4, lua: publishLua });
  redis.defineCommand('pwResume', { numberOfKeys: 6, lua: resumeLua });
  redis.defineCommand('pwBeginResume', { numberOfKeys: 3, lua: beginResumeLua });
  redis.defineCommand('pwRescue', { numberOfKeys: 3, lua: rescueLua });
  redis.defineCommand('pwRenew', { numberOfKeys: 3, lua: renewLua });
  redis.defineCommand('pwAttach', { numberOfKeys: 2, lua: attachLua });
  redis.defineCommand('pwAdmit', { numberOfKeys: 4, lua: admitLua });
  redis.defineCommand('pwRefresh', { numberOfKeys: 2, lua: refreshLua });
  redis.defineCommand('pwClose', { numberOfKeys: 2, lua: closeLua });
  redis.defineCommand('pwEndpoint', { numberOfKeys: 3, lua: endpointLua });
  redis.defineCommand('pwPosition', { numberOfKeys: 1, lua: positionLua });
  redis.defineCommand('pwPresence', { numberOfKeys: 5, lua: presenceLua });
  redis.defineCommand('pwSweep', { numberOfKeys: 1, lua: sweepLua });
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwPosition(history: string): Result<string, Context>;
    pwSweep(all: string, cutoffMs: number, max: number): Result<string[], Context>;
    pwEndpoint(
      endpoints: string,
      epoch: string,
      tokenEpoch: string,
      endpoint: string,
      endpointsTtlSeconds: number,
      nowMs: number,
    ): Result<string, Context>;
    pwPublish(
      live: string,
      history: string,
      lost: string,
      publishIds: string,
      nowMs: number,
      entry: string,
      historySize: number,
      historyTtlSeconds: number,
      inlineLimit: number,
      publishId: string,
      delta: string,
    ): Result<[string, number, ...string[]], Context>;
    pwResume(
      history: string,
      live: string,
      resuming: string,
      lost: string,
      leases: string,
      dismissed: string,
      member: string,
      since: string,
      maxEntries: number,
      maxBytes: number,
      entryOverhead: number,
      nowMs: number,
      liveTtlSeconds: number,
      handOffWhenFits: '0' | '1',
    ): Result<string[], Context>;
    pwBeginResume(
      live: string,
      resuming: string,
      leases: string,
      member: string,
      nowMs: number,
      leaseEndMs: number,
      ttlSeconds: number,
    ): Result<number, Context>;
    pwRescue(
      live: string,
      resuming: string,
      leases: string,
      nowMs: number,
      liveTtlSeconds: number,
      member: string,
    ): Result<number, Context>;
    pwRenew(
      live: string,
      resuming: string,
      leases: string,
      member: string,
      expiryMs: number,
      nowMs: number,
      ttlSeconds: number,
    ): Result<number, Context>;
    pwAttach(
      record: string,
      topics: string,
      topic: string,
      ttlSeconds: number,
      maxTopics: number,
    ): Result<number, Context>;
    pwClose(record: string, topics: string): Result<[] | [string[], string[]], Context>;
    pwAdmit(
      live: string,
      resuming: string,
      leases: string,
      revoked: string,
      member: string,
      expiryMs: number,
      nowMs: number,
      ttlSeconds: number,
      issuedAtMs: number,
      maxConnections: number,
      leaseEndMs: number | '',
    ): Result<number, Context>;
    pwRefresh(
      record: string,
      topics: string,
      tokenExpiresAt: number,
      allowedTopics: string,
      ttlSeconds: number,
      issuedAtMs: number,
      presenceGrants: string,
      info: string,
      publishGrants: string,
    ): Result<string[] | null, Context>;
    /** See presence.lua: five keys, then the op and its arguments. */
    pwPresence(
      ...keysAndArgs: (string | number)[]
    ): Result<(string | number)[] | number | null, Context>;
    pwPresenceTake(
      events: string,
      lock: string,
      token: string,
      max: number,
      lockMs: number,
    ): Result<string[] | null, Context>;
  }
}
