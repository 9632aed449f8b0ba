-- drop_lost: after the upgrade, forget the ids whose record layout 1 lost to a colliding id
-- (id `a:payload`'s record overwritten by id `a`'s payload): index entries and leftover keys.
-- KEYS[1]  the key prefix
-- ARGV     the lock token, the number k of indexes, k index keys (status and type indexes), then ids
-- Returns  the number of ids forgotten | -1: the lock is not this process's any more
-- Only an id with no task hash is forgotten: that record cannot be read (404) nor listed.
if redis.call('GET', LAYOUT_LOCK) ~= ARGV[1] then return -1 end
local k = tonumber(ARGV[2])
local n = 0
for i = 3 + k, #ARGV do
  local id = ARGV[i]
  if redis.call('TYPE', task_key(id)).ok ~= 'hash' then
    for j = 3, 2 + k do redis.call('ZREM', ARGV[j], id) end
    redis.call('ZREM', ALL_INDEX, id)
    redis.call('ZREM', SCHEDULE, id)
    redis.call('ZREM', LEASES, id)
    redis.call('ZREM', EXPIRY, id)
    redis.call('DEL', history_key(id), payload_key(id))
    n = n + 1
  end
end
return n
