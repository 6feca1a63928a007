-- Stores a refreshed token's expiry, grants and issue time in a connection's record and
-- reads its topics, atomically: a subscribe's attach.lua runs either before
-- (its topic is read here, and left if the new grants refuse it) or after
-- (it checks the new grants). Nothing is written for a record that is gone
-- or being removed (an HSET would bring back a record without its user).
--
-- KEYS[1] - connection record HASH
-- KEYS[2] - connection topics SET
-- ARGV[1] - token expiry, ms
-- ARGV[2] - grants, JSON array
-- ARGV[3] - TTL, seconds
-- ARGV[4] - token issued at (iat), ms
-- ARGV[5] - presence grants, JSON array
-- ARGV[6] - the user's public info, JSON ('' none)
-- ARGV[7] - publish grants, JSON array
-- Returns the topics (SMEMBERS), or nil when the connection is unknown.

if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then
  return false
end
redis.call('HSET', KEYS[1], 'exp', ARGV[1], 'allowedTopics', ARGV[2], 'iat', ARGV[4], 'presenceTopics', ARGV[5], 'info', ARGV[6],
  'publishTopics', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('SMEMBERS', KEYS[2])
