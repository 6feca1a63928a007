-- Adds a topic to a connection's topic set unless the connection already has
-- as many topics as it may (a repeated subscribe to a topic it has is fine).
-- Atomic, so frames handled side by side cannot together pass the limit.
--
-- KEYS[1] - the connection's topic SET
-- ARGV[1] - topic
-- ARGV[2] - most topics allowed
-- ARGV[3] - TTL of the set, seconds
-- Returns 1 when the connection has the topic, 0 when refused

if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and
    redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
