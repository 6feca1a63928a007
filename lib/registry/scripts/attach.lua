-- Adds a topic to a connection's topic list, only while its record exists
-- and is not being removed (remove() marks it "closing" before it takes the
-- memberships away). Renews both TTLs.
--
-- KEYS[1] - connection record HASH
-- KEYS[2] - connection topics SET
-- ARGV[1] - topic
-- ARGV[2] - TTL, seconds
-- Returns 1 when added (or already there), 0 when the connection is unknown.

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
