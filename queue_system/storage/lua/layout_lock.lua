-- layout_lock: renew or release the upgrade's lock, if it is still this process's.
-- KEYS[1]  the key prefix
-- ARGV     the lock token, ttl_ms (0: release)
-- Returns  1 renewed or released | 0 the lock is not this process's
if redis.call('GET', LAYOUT_LOCK) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', LAYOUT_LOCK, ARGV[2])
else
  redis.call('DEL', LAYOUT_LOCK)
end
return 1
