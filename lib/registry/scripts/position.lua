-- Where a stream stands, for a client joining it (the `cursor` of `subscribed`
-- and `pong`): its newest entry's id; or, with no history, a cursor from this
-- node's clock just before any entry that can still be added ("<now - 1>-0";
-- XADD * never makes an id below "<now>-0" on a stream it creates). In that
-- case the cursor is also recorded as the stream's floor (unless one is
-- there): history is known complete after it, so a resume from it is
-- recovered, while a stream that expired whole and comes back without a
-- floor gets one at its first new entry (publish.lua) and a resume from
-- before that answers recovered:false.
--
-- KEYS[1] - history STREAM
-- KEYS[2] - floor STRING (the lost marker: history holds exactly the entries after it)
-- ARGV[1] - history TTL, seconds (the floor's, as the stream's)
-- Returns the cursor.

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then
  return newest[1][1]
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cursor = string.format('%.0f', ms - 1) .. '-0'
redis.call('SET', KEYS[2], cursor, 'NX', 'EX', ARGV[1])
return cursor
