-- Gives a publish id back after a failed attempt, but only while the claim is
-- still that attempt's: an attempt that outlived its lease must not release
-- the claim of the retry that took over.
--
-- KEYS[1] - dedup STRING of the publish id ("pending:<token>" or the result JSON)
-- ARGV[1] - the claim the attempt holds ("pending:<token>")
-- Returns 1 when the claim was released, 0 when it was no longer this attempt's

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
