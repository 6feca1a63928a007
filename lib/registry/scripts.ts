import type { Cluster, Redis, Result } from 'ioredis';
import publishLua from './scripts/publish.lua';
import resumeLua from './scripts/resume.lua';
import topicAddLua from './scripts/topic-add.lua';

/**
 * Registers our Lua scripts on a client. ioredis sends EVALSHA and falls back
 * to EVAL on NOSCRIPT, so a failover to a fresh node is handled for us.
 */
export function defineScripts(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).pwPublish === 'function') return;
  redis.defineCommand('pwPublish', { numberOfKeys: 4, lua: publishLua });
  redis.defineCommand('pwResume', { numberOfKeys: 4, lua: resumeLua });
  redis.defineCommand('pwTopicAdd', { numberOfKeys: 1, lua: topicAddLua });
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwPublish(
      live: string,
      history: string,
      lost: string,
      publishId: string,
      nowMs: number,
      entry: string,
      historySize: number,
      historyTtlSeconds: number,
      inlineLimit: number,
      recordId: '1' | '',
    ): Result<[string, number, ...string[]], Context>;
    pwResume(
      history: string,
      live: string,
      resuming: string,
      lost: string,
      member: string,
      since: string,
      batch: number,
      expiryMs: number,
      liveTtlSeconds: number,
    ): Result<string[], Context>;
    pwTopicAdd(
      topics: string,
      topic: string,
      maxTopics: number,
      ttlSeconds: number,
    ): Result<number, Context>;
  }
}
