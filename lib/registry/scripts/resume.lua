-- One step of replaying an audience's history to a member that is catching up.
-- Returns the next batch after `cursor`, bounded in entries and bytes (what
-- one post can carry). The member moves from the resuming set to the live set
-- in the same atomic step as the read that finds nothing left (ARGV[8] = "0"),
-- or, with ARGV[8] = "1", as the read whose batch holds everything that
-- remains. Either way every later publish finds it live and every earlier one
-- is in what it replayed. "0" is exact about order (the replay's last post is
-- done before any live post starts) but needs one post's time with nothing
-- published, which a busy audience never leaves; "1" always converges (the
-- backlog shrinks each step until the rest fits one post), at the price of
-- that last post being in flight together with the first live ones.
--
-- KEYS[1] - history STREAM
-- KEYS[2] - live members ZSET (score = expiry ms)
-- KEYS[3] - resuming members ZSET (score = expiry ms)
-- KEYS[4] - lost marker STRING (id of the newest entry ever trimmed)
-- KEYS[5] - replay leases ZSET (member -> lease end ms)
-- KEYS[6] - dismissed ids ZSET (issue 18: acknowledged messages a first ack
--           dismissed); an entry whose id is in it goes out with
--           "dismissed":true. Absent for topics, and for most users.
-- ARGV[1] - member ("connectionId|endpoint")
-- ARGV[2] - cursor to read after (exclusive), e.g. "1732752000000-0"
-- ARGV[3] - most entries per batch
-- ARGV[4] - most bytes per batch, counted as the sum of (id + entry + ARGV[5])
-- ARGV[5] - bytes a frame adds around each entry
-- ARGV[6] - now, ms since epoch
-- ARGV[7] - TTL of the live set, seconds
-- ARGV[8] - "1": hand off with the batch that holds the rest; "0": only when nothing remains
-- Returns { state, lost, id1, entry1, id2, entry2, ... } where state is
--   "more": a batch; more remain; the member is still resuming
--   "rest": a batch holding all that remained; the member is still resuming (ARGV[8] = "0")
--   "last": the last batch (possibly empty); the member is now live
--   "live": the member was already live (a replay side by side made it so); nothing to send
--   "gone": the member is in neither set (disconnected, kicked, expired); nothing to send
-- (lost: the trim marker read with the batch, "" when none; history holds exactly
-- the entries after it, so lost > cursor means entries after the cursor were
-- trimmed before they could be replayed)

local member = ARGV[1]
local now = tonumber(ARGV[6])

local score = redis.call('ZSCORE', KEYS[3], member)
if not score or tonumber(score) <= now then
  if score then
    redis.call('ZREM', KEYS[3], member)
    redis.call('ZREM', KEYS[5], member)
  end
  local live = redis.call('ZSCORE', KEYS[2], member)
  if live and tonumber(live) > now then
    return { 'live' }
  end
  return { 'gone' }
end

-- The message is the entry's "m" field (looked up by name, not position).
local function message(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then
      return fields[i + 1]
    end
  end
  return '{}'
end

local max = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local overhead = tonumber(ARGV[5])
-- One more than a batch: tells whether this batch is all that remains.
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', max + 1)
local result = { 'more', redis.call('GET', KEYS[4]) or '' }
local taken, bytes = 0, 0
local dismissed = redis.call('EXISTS', KEYS[6]) == 1
while taken < #entries and taken < max do
  local id = entries[taken + 1][1]
  local m = message(entries[taken + 1][2])
  -- Every entry starts {"id":"…" (publish.ts); ids need no JSON escapes.
  if dismissed and redis.call('ZSCORE', KEYS[6], string.match(m, '^{"id":"([^"]*)"') or '') then
    m = '{"dismissed":true,' .. string.sub(m, 2)
  end
  local size = #id + #m + overhead
  -- Always at least one: a single message always fits a post on its own.
  if taken > 0 and bytes + size > budget then
    break
  end
  taken = taken + 1
  bytes = bytes + size
  result[#result + 1] = id
  result[#result + 1] = m
end

if taken == #entries and (taken == 0 or ARGV[8] == '1') then
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[5], member)
  -- The expiry score travels with the member: touch keeps it equal to the record's.
  redis.call('ZADD', KEYS[2], score, member)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  result[1] = 'last'
elseif taken == #entries then
  result[1] = 'rest'
end
return result
