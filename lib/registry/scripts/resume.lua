-- One step of replaying an audience's history to a member that is catching up.
-- While entries remain after `since`, return a batch (the caller posts them
-- and calls again from the last id). When none remain, move the member from
-- the resuming set to the live set in the same atomic step: any later publish
-- then finds it live, any earlier one was in the history it just replayed.
--
-- KEYS[1] - history STREAM
-- KEYS[2] - live members ZSET
-- KEYS[3] - resuming members ZSET
-- KEYS[4] - lost marker STRING (id of the newest entry ever trimmed)
-- ARGV[1] - member ("connectionId|endpoint")
-- ARGV[2] - cursor to read after (exclusive), e.g. "1732752000000-0"
-- ARGV[3] - batch size
-- ARGV[4] - expiry score for the member when it goes live (ms)
-- ARGV[5] - TTL of the live set, seconds
-- Returns { "more", lost, id1, entry1, id2, entry2, ... } or { "live" } or { "gone" }
-- (lost: the trim marker read with the batch, "" when none; history holds exactly
-- the entries after it, so lost > cursor means entries after the cursor were
-- trimmed before they could be replayed)
-- ("gone": the member left the resuming set, e.g. disconnected, meanwhile,
-- and is not live either)

local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
if #entries > 0 then
  local result = { 'more', redis.call('GET', KEYS[4]) or '' }
  for i = 1, #entries do
    result[#result + 1] = entries[i][1]
    result[#result + 1] = entries[i][2][2]
  end
  return result
end

if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then
  -- Another replay of this audience to this member (two resumes or
  -- subscribes handled side by side) has already made it live.
  if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
    return { 'live' }
  end
  return { 'gone' }
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return { 'live' }
