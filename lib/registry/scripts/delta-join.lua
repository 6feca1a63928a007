-- A delta subscriber joins a topic live (issue 17): where the stream stands
-- (as position.lua answers it), recorded as the member's join position in
-- the delta members hash, in one step. A publish sends this member a delta
-- only against an entry stored after this position: one it received live.
--
-- KEYS[1] - history STREAM
-- KEYS[2] - delta members HASH
-- ARGV[1] - the member ("connectionId|endpoint")
-- ARGV[2] - TTL of the hash, seconds
-- Returns the cursor.

local position
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then
  position = newest[1][1]
else
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  position = string.format('%.0f', ms - 1) .. '-0'
end
redis.call('HSET', KEYS[2], ARGV[1], position)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return position
