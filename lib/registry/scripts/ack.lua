-- Acks (issue 18, lib/acks/): one connection acks a batch of messages of its
-- user. Each message's state is a hash in the user's slot; an id with no
-- state (another user's message, an unknown id, or one whose state expired)
-- is refused. Idempotent: a second ack of the same id by the same connection
-- changes nothing. The first ack of a message with dismissOthers records the
-- id as dismissed (resume.lua marks it in replays) and answers the user's
-- other connections, live or replaying, to send `dismiss` to.
--
-- KEYS[1] - the user's live members ZSET (score = expiry ms)
-- KEYS[2] - the user's resuming members ZSET
-- KEYS[3] - the user's dismissed ids ZSET (id -> when, ms)
-- KEYS[4..] - the ack state HASH of each id acked
-- ARGV[1] - the acking connection's id
-- ARGV[2] - now, ms
-- ARGV[3] - TTL of the dismissed set, seconds (the history's)
-- Returns { codes, members }: per id 0 refused, 1 acked, 2 first ack that
-- dismisses; members: the other connections ("connectionId|endpoint").

local c, now = ARGV[1], tonumber(ARGV[2])
local codes, dismiss = {}, false
for i = 4, #KEYS do
  local k = KEYS[i]
  local code = redis.call('EXISTS', k)
  if code == 1 then
    redis.call('HSETNX', k, 'a:' .. c, now)
    -- The first ack (the state reads as acked from then on: store.ts).
    if redis.call('HSETNX', k, 'first', c) == 1 then
      redis.call('HSET', k, 'fa', now)
      if redis.call('HGET', k, 'd') == '1' then
        code = 2
        dismiss = true
        redis.call('ZADD', KEYS[3], now, redis.call('HGET', k, 'id'))
      end
    end
  end
  codes[#codes + 1] = code
end
local members = {}
if dismiss then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ARGV[3] * 1000)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  -- A member is live or resuming, never both.
  for s = 1, 2 do
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[s], now, '+inf')) do
      if string.sub(m, 1, #c + 1) ~= c .. '|' then
        members[#members + 1] = m
      end
    end
  end
end
return { codes, members }
