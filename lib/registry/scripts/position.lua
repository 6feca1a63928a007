-- Where a stream stands, for a client joining it (the `cursor` of `subscribed`
-- and `pong`): its newest entry's id; or, with no history, a cursor from this
-- node's clock just before any entry that can still be added ("<now - 1>-0";
-- XADD * never makes an id below "<now>-0" on a stream it creates). Either
-- way a resume from it is exact and, while it is younger than the history
-- TTL, never doubted (see RedisRegistry.recoverable).
--
-- KEYS[1] - history STREAM
-- Returns the cursor.

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then
  return newest[1][1]
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return string.format('%.0f', ms - 1) .. '-0'
