-- Admits a connection to its user's sets: refuses it if the user's tokens
-- were revoked at or after this one was issued, or if the user already has
-- as many connections as allowed, and else adds it, atomically. A kick with
-- revoke sets the revocation, then reads the user's connections (same slot):
-- a connection admitted before is read and closed, one after is refused.
-- Connects racing each other are counted one by one, so none passes the cap.
--
-- KEYS[1] - user's live members ZSET (score = expiry ms)
-- KEYS[2] - user's resuming members ZSET
-- KEYS[3] - user's replay leases ZSET
-- KEYS[4] - user's revocation STRING (ms)
-- ARGV[1] - member ("connectionId|endpoint")
-- ARGV[2] - member expiry, ms
-- ARGV[3] - now, ms
-- ARGV[4] - TTL of the sets, seconds
-- ARGV[5] - token issued at (iat), ms
-- ARGV[6] - most connections allowed (0: no limit)
-- ARGV[7] - replay lease end, ms ('': join live; else join resuming)
-- Returns 1 when admitted, -1 when revoked, -2 when at the limit.

local revoked = redis.call('GET', KEYS[4])
if revoked and tonumber(ARGV[5]) <= tonumber(revoked) then
  return -1
end
local max = tonumber(ARGV[6])
local after = '(' .. ARGV[3]
if max > 0 and redis.call('ZCOUNT', KEYS[1], after, '+inf') +
    redis.call('ZCOUNT', KEYS[2], after, '+inf') >= max then
  return -2
end
if ARGV[7] == '' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
