-- Takes a topic's waiting join/leave events, in order, for one drain at a
-- time: the first take acquires the lock (with a PX, so a drain that died
-- frees it), later ones of the same drain renew it, and the take that finds
-- none left releases it. A drain finding another's lock takes nothing: the
-- holder takes until none are left, these events included.
--
-- KEYS[1] - events LIST ("+userId connectionId info" / "-userId connectionId")
-- KEYS[2] - drain lock STRING
-- ARGV[1] - this drain's token
-- ARGV[2] - most events to take
-- ARGV[3] - lock time, ms
-- Returns the events taken (none: the lock is released), or nil (another drain holds it).

local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return false end
local taken = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #taken == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('LTRIM', KEYS[1], #taken, -1)
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
return taken
