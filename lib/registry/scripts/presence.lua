-- A topic's presence: who is on it, each user once however many devices.
-- Devices (connections subscribed to the topic) carry their expiry as score,
-- like the topic's audience; users are counted by device. A user joins with
-- the first device and leaves with the last, removed or expired: every op
-- that reads or adds first takes out devices whose expiry passed (their
-- $disconnect was lost), so a lost $disconnect still means a leave.
-- Join/leave events of topics that fan them out are appended to a list that
-- the presence-events function drains; the reply says whether, and after
-- how long, that function should be invoked (coalesced above a size).
--
-- KEYS[1] - devices ZSET ("connectionId|userId", score = expiry ms)
-- KEYS[2] - users ZSET (userId, score 0: ordered by name)
-- KEYS[3] - counts HASH (userId -> "<devices> <info JSON or nothing>")
-- KEYS[4] - events LIST ("+userId connectionId info" / "-userId connectionId": the device's)
-- KEYS[5] - flush STRING (set while coalesced events wait for their drain)
-- ARGV[1] - op: join | leave | renew | page | expire
-- ARGV[2] - now, ms
-- ARGV[3] - TTL of every key, seconds
-- ARGV[4] - '1': record join/leave events for this topic
-- ARGV[5] - coalesce above this many users (0: never)
-- ARGV[6] - coalescing interval, ms
-- join:   ARGV[7] device, ARGV[8] userId, ARGV[9] expiry ms, ARGV[10] info JSON ('' none)
--         -> {changes, nudge}
-- leave:  ARGV[7] device, ARGV[8] userId -> {changes, nudge}
-- renew:  ARGV[7] device, ARGV[8] expiry ms -> 1 renewed / 0 not there
-- page:   ARGV[7] after (userId, '' from the start), ARGV[8] limit
--         -> {nudge, users, more (0/1), userId, info, userId, info...}
-- expire: ARGV[7] most devices -> {changes, nudge, removed, earliest expiry ('' none), events waiting}
-- nudge: -1 nothing to fan out, 0 now, or after that many ms (coalesced).

local devices, users, counts, events, flush = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, now, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local recording = ARGV[4] == '1'
local above, interval = tonumber(ARGV[5]), tonumber(ARGV[6])
local changes, removed = 0, 0

local function record(event)
  changes = changes + 1
  if recording then redis.call('RPUSH', events, event) end
end

local function connection(device)
  return string.sub(device, 1, string.find(device, '|', 1, true) - 1)
end

local function gone(device, user)
  if redis.call('ZREM', devices, device) == 0 then return end
  removed = removed + 1
  local value = redis.call('HGET', counts, user)
  if not value then return end
  local n, info = string.match(value, '^(%d+) ?(.*)$')
  n = tonumber(n) - 1
  if n > 0 then
    redis.call('HSET', counts, user, n .. ' ' .. info)
  else
    redis.call('HDEL', counts, user)
    redis.call('ZREM', users, user)
    record('-' .. user .. ' ' .. connection(device))
  end
end

local function expire(max)
  local dead = redis.call('ZRANGEBYSCORE', devices, '-inf', now, 'LIMIT', 0, max)
  for _, device in ipairs(dead) do
    gone(device, string.sub(device, string.find(device, '|', 1, true) + 1))
  end
end

local function nudge()
  if changes == 0 or not recording then return -1 end
  if above > 0 and redis.call('ZCARD', users) > above then
    if redis.call('SET', flush, '1', 'PX', interval, 'NX') then return interval end
    return -1
  end
  return 0
end

local function keep()
  for _, key in ipairs({ devices, users, counts, events }) do redis.call('EXPIRE', key, ttl) end
end

if op == 'renew' then
  if not redis.call('ZSCORE', devices, ARGV[7]) then return 0 end
  redis.call('ZADD', devices, 'XX', ARGV[8], ARGV[7])
  keep()
  return 1
end

if op == 'join' then
  local device, user, info = ARGV[7], ARGV[8], ARGV[10]
  expire(100)
  if redis.call('ZADD', devices, ARGV[9], device) == 1 then
    local value = redis.call('HGET', counts, user)
    local n = value and tonumber(string.match(value, '^%d+')) or 0
    -- The newest device's info is the user's.
    redis.call('HSET', counts, user, (n + 1) .. ' ' .. info)
    if n == 0 then
      redis.call('ZADD', users, 0, user)
      record('+' .. user .. ' ' .. connection(device) .. ' ' .. info)
    end
  end
  keep()
  return { changes, nudge() }
end

if op == 'leave' then
  gone(ARGV[7], ARGV[8])
  return { changes, nudge() }
end

if op == 'page' then
  expire(100)
  local after, limit = ARGV[7], tonumber(ARGV[8])
  local page = redis.call('ZRANGEBYLEX', users, after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, limit + 1)
  local out = { nudge(), redis.call('ZCARD', users), #page > limit and 1 or 0 }
  for i = 1, math.min(#page, limit) do
    out[#out + 1] = page[i]
    out[#out + 1] = string.match(redis.call('HGET', counts, page[i]) or '', '^%d+ ?(.*)$') or ''
  end
  return out
end

if op == 'expire' then
  expire(tonumber(ARGV[7]))
  local first = redis.call('ZRANGE', devices, 0, 0, 'WITHSCORES')
  return { changes, nudge(), removed, first[2] or '', redis.call('LLEN', events) }
end

return redis.error_reply('unknown presence op ' .. tostring(op))
