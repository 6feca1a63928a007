-- Registers one push device of a user (lib/push/devices.ts).
-- KEYS[1]: the user's devices HASH. ARGV: now (ms), device id, record JSON,
-- most devices per user, key TTL (ms).
-- Drops expired records, then, if the user is at the limit without this
-- device, evicts the least recently registered ones. Returns
-- { previous record or false, JSON list of evicted records, JSON list of expired ones }.
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local live, evicted, expired = {}, {}, {}
for i = 1, #all, 2 do
  local ok, record = pcall(cjson.decode, all[i + 1])
  if not ok or type(record) ~= 'table' or (tonumber(record.expiresAt) or 0) <= now then
    redis.call('HDEL', KEYS[1], all[i])
    if ok then expired[#expired + 1] = all[i + 1] end
  elseif all[i] ~= ARGV[2] then
    live[#live + 1] = { all[i], tonumber(record.registeredAt) or 0, all[i + 1] }
  end
end
local max = tonumber(ARGV[4])
if #live >= max then
  table.sort(live, function(a, b) return a[2] < b[2] end)
  for j = 1, #live - max + 1 do
    redis.call('HDEL', KEYS[1], live[j][1])
    evicted[#evicted + 1] = live[j][3]
  end
end
local previous = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return { previous, '[' .. table.concat(evicted, ',') .. ']', '[' .. table.concat(expired, ',') .. ']' }
