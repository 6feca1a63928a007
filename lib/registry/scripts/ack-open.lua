-- Opens an acknowledged message's state for one user (issue 18, lib/acks/),
-- or, for a retried publish (same id), adds the connections it was posted to
-- this time and leaves the rest (acks, push) as it is.
--
-- KEYS[1] - the ack state HASH
-- ARGV[1] - TTL, seconds
-- ARGV[2] - now, ms
-- ARGV[3..] - field, value pairs of a new state, then "", then the connection ids posted to
-- Returns 1 when opened, 0 when it was open already.

local k = KEYS[1]
local opened = redis.call('EXISTS', k) == 0
local i = 3
while ARGV[i] ~= '' do
  if opened then
    redis.call('HSET', k, ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
for j = i + 1, #ARGV do
  redis.call('HSETNX', k, 'p:' .. ARGV[j], ARGV[2])
end
if opened then
  redis.call('EXPIRE', k, ARGV[1])
end
return opened and 1 or 0
