-- Append a message to an audience's history and read who should get it, in
-- one atomic step. Atomicity is what makes resume exact: a member that is
-- still replaying (in the resuming set) either sees this entry in its replay
-- or is already live here, never neither and never both.
--
-- KEYS[1] - live members ZSET (member "connectionId|endpoint", score = expiry ms)
-- KEYS[2] - history STREAM
-- KEYS[3] - lost marker STRING (id of the newest entry ever trimmed)
-- KEYS[4] - publish ids HASH (publish id -> cursor of the entry it was stored
--           as), holding only ids of entries still in history: an entry
--           trimmed takes its id with it, so the hash is bounded by the
--           history (HISTORY_SIZE), not by a day of publishes
-- ARGV[1] - now, ms since epoch
-- ARGV[2] - history entry (JSON), or "" to keep no history
-- ARGV[3] - history size (entries kept)
-- ARGV[4] - history TTL, seconds (also the age limit of an entry)
-- ARGV[5] - inline limit: members are returned only when there are at most this many
-- ARGV[6] - the publish id to record (a publish with an `id`), else ""
-- ARGV[7] - "1" for a delta topic (issue 17, docs/protocol.md PW-D), else ""
-- Returns { cursor or "", number of live members, members... }; for a delta
-- topic { cursor, count, previous cursor or "", previous entry or "",
-- members... }: the entry this one follows, read atomically with the
-- append, so concurrent publishes never pair a delta with the wrong base.

local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local cursor = ''
local size = tonumber(ARGV[3])
-- A publish id seen before on this stream (a retried publish) gets the cursor
-- it was stored under and is not appended again: every attempt sends the same
-- frame, and history holds the message once.
local id = ARGV[6]
local known = false
if id ~= '' then
  known = redis.call('HGET', KEYS[4], id)
end

-- Forgets the publish ids of entries about to be trimmed (their `i` field),
-- unless the id has since been stored again under a newer entry.
local function forget(entries)
  for i = 1, #entries do
    local fields = entries[i][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'i' and redis.call('HGET', KEYS[4], fields[j + 1]) == entries[i][1] then
        redis.call('HDEL', KEYS[4], fields[j + 1])
      end
    end
  end
end
local result = { '', 0 }
if ARGV[7] == '1' then
  result = { '', 0, '', '' }
end
if known then
  cursor = known
elseif ARGV[2] ~= '' and size > 0 then
  local ttl = tonumber(ARGV[4])
  local last = result[3] and redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if last and last[2][1] == 'm' then
    result[3] = last[1]
    result[4] = last[2][2]
  end
  if id ~= '' then
    cursor = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2], 'i', id)
  else
    cursor = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
  end
  if id ~= '' then
    redis.call('HSET', KEYS[4], id, cursor)
  end
  -- Trimmed entries' ids go only if any id is recorded (most streams have none).
  local ids = redis.call('EXISTS', KEYS[4]) == 1

  -- Age: drop entries older than the TTL, remembering the newest one dropped.
  local minid = string.format('%.0f', now - ttl * 1000) .. '-0'
  local old = redis.call('XREVRANGE', KEYS[2], '(' .. minid, '-', 'COUNT', 1)
  if old[1] then
    redis.call('SET', KEYS[3], old[1][1])
    if ids then
      forget(redis.call('XRANGE', KEYS[2], '-', '(' .. minid))
    end
    redis.call('XTRIM', KEYS[2], 'MINID', minid)
  end

  -- Size: keep the newest `size` entries, remembering the newest one dropped.
  local extra = redis.call('XLEN', KEYS[2]) - size
  if extra > 0 then
    local gone = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', extra)
    redis.call('SET', KEYS[3], gone[#gone][1])
    if ids then
      forget(gone)
    end
    redis.call('XTRIM', KEYS[2], 'MAXLEN', size)
  end

  redis.call('EXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('EXPIRE', KEYS[3], ttl)
  end
  if ids then
    redis.call('EXPIRE', KEYS[4], ttl)
  end
end

local count = redis.call('ZCARD', KEYS[1])
result[1] = cursor
result[2] = count
if count <= tonumber(ARGV[5]) then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  local first = #result
  for i = 1, #members do
    result[first + i] = members[i]
  end
end
return result
