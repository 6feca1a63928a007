-- Records, at every $connect, the endpoint the connection came through (the
-- set `deliver` checks its chunks against) and, once, when this Redis's data
-- began (the epoch a resume checks cursors against: a Redis that restarted
-- without its data, or was flushed, starts a new one at its next $connect,
-- after every cursor it has lost). A publish instance's first stored publish
-- marks the epoch too (no endpoint), so it precedes the first history entry
-- of a new deployment. Both keys share a slot (the epoch's name has the
-- endpoints key as its hash tag).
--
-- KEYS[1] - endpoints SET
-- KEYS[2] - epoch STRING (ms since 1970, in Redis's clock: the clock of every
--           cursor; no TTL)
-- ARGV[1] - the endpoint, or '' to mark the epoch only
-- ARGV[2] - TTL of the endpoints set, seconds
--
-- With no epoch yet but endpoints already recorded, the data predates epochs
-- (a deployment upgraded in place): the epoch is 0, nothing is doubted.

if redis.call('EXISTS', KEYS[2]) == 0 then
  local epoch = '0'
  if redis.call('EXISTS', KEYS[1]) == 0 then
    local now = redis.call('TIME')
    epoch = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
  end
  redis.call('SET', KEYS[2], epoch)
end
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
