-- Removes one push device (lib/push/devices.ts). KEYS[1]: the user's devices
-- HASH. ARGV[1]: device id; ARGV[2]: the record it must still hold, or ''
-- for any. Returns the removed record, or false.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record or (ARGV[2] ~= '' and record ~= ARGV[2]) then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return record
