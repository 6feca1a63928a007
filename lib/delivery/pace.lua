-- The account's shared token bucket for management API posts (lib/delivery/pacing.ts).
-- One key, so it lives in one slot under Redis Cluster; the clock is Redis's
-- (TIME), so workers on different hosts share one clock. No worker holds
-- anything in it: a worker that dies mid-chunk leaves only tokens it took
-- (spent or not), and the bucket refills on time alone.
--
-- KEYS[1] - HASH: t = tokens, at = ms of the last refill, r = current rate
--           (posts/s, lowered on a throttle, recovering), cut = ms of the last lowering
-- ARGV[1] - 'take' or 'throttled'
-- ARGV[2] - configured rate (posts/s): the ceiling r recovers to
-- ARGV[3] - burst (most tokens the bucket holds)
-- ARGV[4] - take: tokens wanted
-- ARGV[5] - take: tokens to leave in the bucket (the small publishes' reserve; 0 for them)
-- ARGV[6] - ms the key outlives its last use
-- Returns {granted, waitMs}: waitMs, when nothing was granted, is when `wanted` will be free;
-- for 'throttled', {1, rate} when this report lowered the rate, {0, rate} when a recent one had.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local max = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 't', 'at', 'r', 'cut')
local r = tonumber(s[3]) or max
local at = tonumber(s[2]) or now
local t = tonumber(s[1]) or burst
local cut = tonumber(s[4]) or 0
local dt = math.max(0, now - at) / 1000
-- Refill at the rate in force, then let the rate recover additively
-- (a tenth of the ceiling per second): AIMD, as TCP does.
t = math.min(burst, t + r * dt)
r = math.min(max, r + max * 0.1 * dt)

local result
if ARGV[1] == 'throttled' then
  -- One lowering per second however many posts were refused together:
  -- they all answer for the same overshoot.
  if now - cut >= 1000 then
    r = math.max(max * 0.05, r * 0.7)
    cut = now
    t = 0
    result = {1, math.floor(r)}
  else
    result = {0, math.floor(r)}
  end
else
  local keep = tonumber(ARGV[5])
  local want = math.max(1, math.min(tonumber(ARGV[4]), burst - keep))
  local free = math.floor(t - keep)
  local granted = math.max(0, math.min(want, free))
  t = t - granted
  local wait = 0
  if granted == 0 then wait = math.ceil((keep + want - t) * 1000 / r) end
  result = {granted, wait}
end
redis.call('HSET', KEYS[1], 't', t, 'at', now, 'r', r, 'cut', cut)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return result
