-- Records, at every $connect, the endpoint the connection came through (the
-- set `deliver` checks its chunks against) and, once, when this Redis's data
-- began (the epoch a resume checks cursors against: a Redis that restarted
-- without its data, or was flushed, starts a new one at its next $connect,
-- after every cursor it has lost). A publish instance's first stored publish
-- marks the epoch too (no endpoint), so it precedes the first history entry
-- of a new deployment. With the epoch, the same moment in the server's clock
-- (the clock revocations are stamped with): tokens issued before it are
-- refused, since any revocation older than the data went with it. The keys
-- share a slot (the epochs' names have the endpoints key as their hash tag).
--
-- KEYS[1] - endpoints SET
-- KEYS[2] - epoch STRING (ms since 1970, in Redis's clock: the clock of every
--           cursor; no TTL)
-- KEYS[3] - token epoch STRING (ms since 1970, in the server's clock; no TTL)
-- ARGV[1] - the endpoint, or '' to mark the epoch only
-- ARGV[2] - TTL of the endpoints set, seconds
-- ARGV[3] - now, ms (the server's clock)
-- Returns the token epoch ('0': refuse no token).
--
-- With no epoch yet but endpoints already recorded, the data predates epochs
-- (a deployment upgraded in place): both epochs are 0, nothing is doubted.

if redis.call('EXISTS', KEYS[2]) == 0 then
  local epoch = '0'
  local tokens = '0'
  if redis.call('EXISTS', KEYS[1]) == 0 then
    local now = redis.call('TIME')
    epoch = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
    tokens = ARGV[3]
  end
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], tokens)
end
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
-- An epoch from before token epochs (upgraded in place): refuse nothing.
return redis.call('GET', KEYS[3]) or '0'
