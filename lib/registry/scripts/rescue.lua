-- Makes live again the members whose replay lease has run out (the function
-- replaying to them was killed, timed out or lost Redis), and prunes expired
-- resuming members. Run before every publish to the audience (pipelined with
-- it, so it costs no round trip), and by a replay giving up (for its member).
-- A member keeps its expiry score as it moves.
--
-- KEYS[1] - live members ZSET (score = expiry ms)
-- KEYS[2] - resuming members ZSET (score = expiry ms)
-- KEYS[3] - replay leases ZSET (member -> lease end ms)
-- ARGV[1] - now, ms since epoch
-- ARGV[2] - TTL of the live set, seconds
-- ARGV[3] - one member to make live whatever its lease, or "" for those whose lease ran out
-- Returns the number of members made live.

local now = tonumber(ARGV[1])
local due
if ARGV[3] ~= '' then
  due = { ARGV[3] }
else
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
end
local moved = 0
for i = 1, #due do
  local member = due[i]
  local score = redis.call('ZSCORE', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  if score then
    redis.call('ZREM', KEYS[2], member)
    if tonumber(score) > now then
      redis.call('ZADD', KEYS[1], score, member)
      moved = moved + 1
    end
  end
end
if moved > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return moved
