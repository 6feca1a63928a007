import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createKeys, decodeMember, encodeMember } from '../../lib/registry/keys.js';
import publishLua from '../../lib/registry/scripts/publish.lua';

/**
 * What Redis Cluster hashes a key by: the text between the first `{` and the
 * next `}` when that is not empty, else the whole key.
 */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

const keys = createKeys('pw:');
/** Names as they occur: user ids, topics and connection ids never contain braces here. */
const name = fc.stringMatching(/^[A-Za-z0-9_.:@=+/-]{1,40}$/);

describe('the lifecycle events outbox', () => {
  it('is one list per stack (region and stage): stacks sharing a Redis relay only their own', () => {
    const prod = keys.events({ region: 'eu-west-1', stage: 'prod' });
    expect(prod).toBe('pw:events:eu-west-1:prod');
    expect(keys.events({ region: 'us-east-1', stage: 'prod' })).not.toBe(prod);
    expect(keys.events({ region: 'eu-west-1', stage: 'canary' })).not.toBe(prod);
  });
});

describe('hash tags of keys', () => {
  it("puts all of one user's keys in one slot, tagged u:<userId>", () => {
    // Act
    const { live, resuming, leases, history, lost } = keys.audience('user', 'alice').keys;

    // Assess
    expect([live, resuming, leases, history, lost].map(hashTag)).toEqual([
      'u:alice',
      'u:alice',
      'u:alice',
      'u:alice',
      'u:alice',
    ]);
  });

  it("puts all of one topic's keys in one slot, tagged t:<topic>", () => {
    // Act
    const { live, resuming, leases, history, lost } = keys.audience('topic', 'team:42').keys;

    // Assess
    expect([live, resuming, leases, history, lost].map(hashTag)).toEqual([
      't:team:42',
      't:team:42',
      't:team:42',
      't:team:42',
      't:team:42',
    ]);
  });

  it("puts a connection's record and its topic list in one slot, tagged with its id", () => {
    // Act
    const record = keys.connection('abc123=');
    const topics = keys.connectionTopics('abc123=');

    // Assess
    expect(hashTag(record)).toBe('abc123=');
    expect(hashTag(topics)).toBe('abc123=');
    expect(record).not.toBe(topics);
  });

  it('gives every key of an audience a distinct name', () => {
    // Act
    const all = Object.values(keys.audience('user', 'alice').keys);

    // Assess
    expect(new Set(all).size).toBe(8);
  });

  it("puts an acknowledged message's state in its user's slot, beside the stream ack.lua reads with it", () => {
    const state = keys.ack('alice', 'call-42');
    expect(hashTag(state)).toBe(hashTag(keys.audience('user', 'alice').keys.live));
    expect(hashTag(state)).toBe(hashTag(keys.audience('user', 'alice').keys.dismissed));
    expect(state).not.toBe(keys.ack('alice', 'call-43'));
    expect(state).not.toBe(keys.ack('bob', 'call-42'));
  });

  it('keeps each audience in one slot for any name, even one containing braces', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('user' as const, 'topic' as const),
        fc.string({ minLength: 1 }),
        (kind, n) => {
          // Act
          const tags = Object.values(keys.audience(kind, n).keys).map(hashTag);

          // Assess
          expect(new Set(tags).size).toBe(1);
        },
      ),
    );
  });

  it('keeps a connection in one slot for any API Gateway connection id', () => {
    // API Gateway ids are base64-like ("L0SM9cOFvHcCIhw="); an id starting
    // with "}" would give an empty tag, but API Gateway never makes one.
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9+/=_-]{1,64}$/), (id) => {
        // Act + Assess
        expect(hashTag(keys.connectionTopics(id))).toBe(hashTag(keys.connection(id)));
      }),
    );
  });

  it('spreads different users, topics and connections over different tags', () => {
    fc.assert(
      fc.property(name, name, (a, b) => {
        fc.pre(a !== b);
        // Act
        const tags = [
          hashTag(keys.audience('user', a).keys.live),
          hashTag(keys.audience('user', b).keys.live),
          hashTag(keys.audience('topic', a).keys.live),
          hashTag(keys.audience('topic', b).keys.live),
          hashTag(keys.connection(a)),
          hashTag(keys.connection(b)),
        ];

        // Assess
        expect(new Set(tags).size).toBe(tags.length);
      }),
    );
  });

  it('keeps a user and a topic of the same name apart', () => {
    // Act
    const user = keys.audience('user', 'news').keys.live;
    const topic = keys.audience('topic', 'news').keys.live;

    // Assess
    expect(user).not.toBe(topic);
    expect(hashTag(user)).not.toBe(hashTag(topic));
  });

  it('tags a dedup key with the publish id', () => {
    // Act + Assess
    expect(hashTag(keys.dedup('order-7'))).toBe('order-7');
  });
});

describe('createKeys', () => {
  it('starts every key with the prefix', () => {
    // Prepare
    const custom = createKeys('app1:');
    const audience = custom.audience('user', 'u').keys;

    // Act
    const all = [
      custom.connection('c'),
      custom.connectionTopics('c'),
      custom.all(),
      custom.dedup('d'),
      ...Object.values(audience),
    ];

    // Assess
    for (const key of all) expect(key.startsWith('app1:')).toBe(true);
  });

  it('gives two prefixes disjoint keys for the same names', () => {
    // Act
    const a = createKeys('a:').audience('user', 'u').keys.live;
    const b = createKeys('b:').audience('user', 'u').keys.live;

    // Assess
    expect(a).not.toBe(b);
  });

  it('keeps the audience kind and name beside the keys', () => {
    // Act
    const audience = keys.audience('topic', 'news');

    // Assess
    expect(audience.kind).toBe('topic');
    expect(audience.name).toBe('news');
  });

  it.each(['{pw}:', 'pw{', 'pw}'])(
    'refuses the prefix %s, which would change the hash tags',
    (prefix) => {
      // Act + Assess
      expect(() => createKeys(prefix)).toThrow('a key prefix must not contain { or }');
    },
  );
});

describe('audience members', () => {
  it('round-trips a member with its endpoint', () => {
    // Prepare
    const r = {
      connectionId: 'abc=',
      endpoint: 'https://x.execute-api.us-east-1.amazonaws.com/prod',
    };

    // Act
    const decoded = decodeMember(encodeMember(r));

    // Assess
    expect(decoded).toEqual(r);
  });

  it('round-trips any connection id without | and any endpoint', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((s) => !s.includes('|')),
        fc.string(),
        (connectionId, endpoint) => {
          // Act
          const decoded = decodeMember(encodeMember({ connectionId, endpoint }));

          // Assess
          expect(decoded).toEqual({ connectionId, endpoint });
        },
      ),
    );
  });

  it.each(['no-separator', '|https://x/prod', ''])('refuses the malformed member %j', (member) => {
    // Act + Assess
    expect(() => decodeMember(member)).toThrow('malformed audience member');
  });
});

describe('Lua scripts', () => {
  it('are loaded as text (the esbuild text loader in bundles, a plugin in tests)', () => {
    // Act + Assess
    expect(typeof publishLua).toBe('string');
    expect(publishLua).toContain("redis.call('XADD'");
  });
});
