-- Renews one member's expiry in one audience (a frame from the connection
-- proves it alive). Only a member that is there is renewed: a connection
-- removed meanwhile is not brought back. A member still resuming under a
-- lease that ran out (its replay died) is made live here, so the next frame
-- heals it even if nobody publishes.
--
-- KEYS[1] - live members ZSET (score = expiry ms)
-- KEYS[2] - resuming members ZSET (score = expiry ms)
-- KEYS[3] - replay leases ZSET (member -> lease end ms)
-- ARGV[1] - member ("connectionId|endpoint")
-- ARGV[2] - new expiry, ms since epoch
-- ARGV[3] - now, ms since epoch
-- ARGV[4] - TTL of the sets, seconds
-- Returns 1 when the member is in the live or resuming set, 0 when in neither.

local member = ARGV[1]
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
local present = redis.call('ZSCORE', KEYS[1], member) ~= false
if redis.call('ZSCORE', KEYS[2], member) then
  present = true
  local lease = redis.call('ZSCORE', KEYS[3], member)
  if not lease or tonumber(lease) <= tonumber(ARGV[3]) then
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
    redis.call('ZADD', KEYS[1], ARGV[2], member)
  else
    redis.call('ZADD', KEYS[2], 'XX', ARGV[2], member)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
if present then
  return 1
end
return 0
