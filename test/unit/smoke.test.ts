import { describe, expect, it } from 'vitest';
import { decodeMember, encodeMember } from '../../lib/registry/keys.js';
import publishLua from '../../lib/registry/scripts/publish.lua';

describe('keys', () => {
  it('round-trips a member with its endpoint', () => {
    const r = {
      connectionId: 'abc=',
      endpoint: 'https://x.execute-api.us-east-1.amazonaws.com/prod',
    };
    expect(decodeMember(encodeMember(r))).toEqual(r);
  });
  it('loads Lua scripts as text', () => {
    expect(publishLua).toContain("redis.call('XADD'");
  });
});
