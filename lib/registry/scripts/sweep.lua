-- Takes connections whose broadcast membership expired (no frame renewed it
-- and no $disconnect removed it) out of the broadcast set and returns them,
-- atomically: of relays sweeping side by side, each member goes to one.
--
-- KEYS[1] - broadcast ZSET (member "connectionId|endpoint", score = expiry ms)
-- ARGV[1] - cutoff: members expired before this (ms since 1970)
-- ARGV[2] - most members to take
-- Returns the members taken.

local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
end
return gone
