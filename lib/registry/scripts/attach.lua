-- Adds a topic to a connection's topic list, only while its record exists
-- and is not being removed (remove() marks it "closing" before it takes the
-- memberships away), only if the grants stored in the record now allow it
-- (an `auth` refresh replaces them in the same slot, refresh.lua: whichever
-- runs first, no topic the new grants refuse is left in the list), and only
-- within the connection's topic limit (a repeated subscribe to a topic it
-- has is fine). Atomic, so frames handled side by side cannot together pass
-- the limit. Renews both TTLs.
--
-- KEYS[1] - connection record HASH
-- KEYS[2] - connection topics SET
-- ARGV[1] - topic
-- ARGV[2] - TTL, seconds
-- ARGV[3] - most topics allowed (0: no limit)
-- Returns 1 when added (or already there), 0 when the connection is unknown,
-- -1 when the connection already has as many topics as it may, -2 when its
-- grants do not allow the topic.

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then
  return 0
end
local topic = ARGV[1]
local granted = false
-- The same rule as topicAllowed() in lib/auth/tokens.ts: "*", the exact
-- name, or a prefix grant ("team:42:*", the * right after a separator) that
-- the topic extends.
for _, g in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'allowedTopics') or '[]')) do
  local p = string.sub(g, 1, -2)
  if g == '*' or g == topic or (string.sub(g, -1) == '*' and
      string.find('_.:@=-', string.sub(g, -2, -2), 1, true) and
      #topic > #p and string.sub(topic, 1, #p) == p) then
    granted = true
    break
  end
end
if not granted then
  return -2
end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SISMEMBER', KEYS[2], topic) == 0 and
    redis.call('SCARD', KEYS[2]) >= max then
  return -1
end
redis.call('SADD', KEYS[2], topic)
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
