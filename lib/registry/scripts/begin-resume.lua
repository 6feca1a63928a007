-- Takes a member out of live delivery for a replay bounded in time: it moves
-- to the resuming set (publishes skip it; what they publish waits in history)
-- and gets a lease. Past the lease the member counts as live again whatever
-- became of the replay (see rescue.lua), so a replay that died cannot strand it.
-- Creates nothing for a member that is in neither set (or expired there): its
-- connection was removed or has expired, and must not come back.
--
-- KEYS[1] - live members ZSET (score = expiry ms)
-- KEYS[2] - resuming members ZSET (score = expiry ms)
-- KEYS[3] - replay leases ZSET (member -> lease end ms)
-- ARGV[1] - member ("connectionId|endpoint")
-- ARGV[2] - now, ms since epoch
-- ARGV[3] - lease end, ms since epoch
-- ARGV[4] - TTL of the sets, seconds
-- Returns 1 when the member is now resuming under this lease, 0 when it is unknown.

local member = ARGV[1]
local now = tonumber(ARGV[2])
local score = redis.call('ZSCORE', KEYS[1], member) or redis.call('ZSCORE', KEYS[2], member)
if not score or tonumber(score) <= now then
  return 0
end
redis.call('ZREM', KEYS[1], member)
redis.call('ZADD', KEYS[2], score, member)
redis.call('ZADD', KEYS[3], ARGV[3], member)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
