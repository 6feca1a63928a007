-- Append a message to an audience's history and read who should get it, in
-- one atomic step. Atomicity is what makes resume exact: a member that is
-- still replaying (in the resuming set) either sees this entry in its replay
-- or is already live here, never neither and never both.
--
-- KEYS[1] - live members ZSET (member "connectionId|endpoint", score = expiry ms)
-- KEYS[2] - history STREAM
-- KEYS[3] - lost marker STRING: the stream's floor; history holds exactly the
--           entries after it (the newest entry ever trimmed, or, for a stream
--           this publish creates, just before its first entry)
-- KEYS[4] - publish id STRING (cursor of the entry this publish id was stored as)
-- ARGV[1] - now, ms since epoch
-- ARGV[2] - history entry (JSON), or "" to keep no history
-- ARGV[3] - history size (entries kept)
-- ARGV[4] - history TTL, seconds (also the age limit of an entry)
-- ARGV[5] - inline limit: members are returned only when there are at most this many
-- ARGV[6] - "1" when KEYS[4] is a publish id to record (a publish with an `id`), else ""
-- Returns { cursor or "", number of live members, members... }

local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local cursor = ''
local size = tonumber(ARGV[3])
-- A publish id seen before on this stream (a retried publish) gets the cursor
-- it was stored under and is not appended again: every attempt sends the same
-- frame, and history holds the message once.
local known = false
if ARGV[6] == '1' then
  known = redis.call('GET', KEYS[4])
end
if known then
  cursor = known
elseif ARGV[2] ~= '' and size > 0 then
  local ttl = tonumber(ARGV[4])
  local fresh = redis.call('EXISTS', KEYS[2]) == 0
  cursor = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
  -- A stream created here (new, or expired whole with its floor) starts its
  -- history at this entry: a resume from before it cannot be known complete.
  -- A floor already there (a client joined the empty stream: position.lua)
  -- is older and still true: nothing was published between.
  if fresh then
    local ms = tonumber(string.match(cursor, '^(%d+)'))
    redis.call('SET', KEYS[3], string.format('%.0f', ms - 1) .. '-0', 'NX')
  end
  if ARGV[6] == '1' then
    redis.call('SET', KEYS[4], cursor, 'EX', ttl)
  end

  -- Age: drop entries older than the TTL, remembering the newest one dropped.
  local minid = string.format('%.0f', now - ttl * 1000) .. '-0'
  local old = redis.call('XREVRANGE', KEYS[2], '(' .. minid, '-', 'COUNT', 1)
  if old[1] then
    redis.call('SET', KEYS[3], old[1][1])
    redis.call('XTRIM', KEYS[2], 'MINID', minid)
  end

  -- Size: keep the newest `size` entries, remembering the newest one dropped.
  local extra = redis.call('XLEN', KEYS[2]) - size
  if extra > 0 then
    local gone = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', extra)
    redis.call('SET', KEYS[3], gone[#gone][1])
    redis.call('XTRIM', KEYS[2], 'MAXLEN', size)
  end

  redis.call('EXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('EXPIRE', KEYS[3], ttl)
  end
end

local count = redis.call('ZCARD', KEYS[1])
local result = { cursor, count }
if count <= tonumber(ARGV[5]) then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  for i = 1, #members do
    result[i + 2] = members[i]
  end
end
return result
