-- An acknowledged message's timeout has come (issue 18, lib/acks/timeout.ts):
-- decides, atomically with the acks, whether a push is due.
--
-- KEYS[1] - the ack state HASH
-- ARGV[1] - now, ms
-- ARGV[2] - "1": the publish gave `notify` (push); "0": only recorded as timed out
-- ARGV[3] - ms after which a "pushing" mark is taken to be a crashed attempt
-- Returns "missing" (no state: expired or lost), "acked", "done" (handled
-- before), "busy" (another attempt is pushing), "push" or "timed_out".

local k, now = KEYS[1], tonumber(ARGV[1])
if redis.call('EXISTS', k) == 0 then
  return 'missing'
end
if redis.call('HEXISTS', k, 'first') == 1 then
  return 'acked'
end
local s = redis.call('HGET', k, 's')
if s == 'pushed' or s == 'timed_out' then
  return 'done'
end
if s == 'pushing' and tonumber(redis.call('HGET', k, 'tf') or '0') > now - tonumber(ARGV[3]) then
  return 'busy'
end
local state = ARGV[2] == '1' and 'pushing' or 'timed_out'
redis.call('HSET', k, 's', state, 'tf', now)
return ARGV[2] == '1' and 'push' or 'timed_out'
