-- First step of removing a connection: marks its record "closing" (from now
-- on no subscribe or touch adds or renews anything for it) and reads what
-- must be taken away, atomically. The record itself is deleted last, after
-- its memberships, so a removal that dies half-way is finished by the next.
--
-- KEYS[1] - connection record HASH
-- KEYS[2] - connection topics SET
-- Returns { record fields and values (HGETALL), topics (SMEMBERS) }, or {} when unknown.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
redis.call('HSET', KEYS[1], 'closing', '1')
return { redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2]) }
