-- renew: extend the leases of the attempts a worker is still running.
-- KEYS[1]  the key prefix
-- ARGV     lease_until, then id, token, id, token, ...
-- Returns  the number of leases extended (only a processing task with that very token)
-- A task with a destination holds its slots (its host's and its endpoint's) as long as its lease.
local lease_until, n = ARGV[1], 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local found = redis.call('HMGET', task_key(id), 'status', 'token', 'dest', 'ep')
  if found[1] == 'processing' and found[2] == token then
    redis.call('ZADD', LEASES, 'XX', lease_until, id)
    if found[3] then
      redis.call('ZADD', inflight_key(found[3]), 'XX', lease_until, id)
      redis.call('ZADD', ep_inflight_key(found[3] .. (found[4] or '')), 'XX', lease_until, id)
    end
    n = n + 1
  end
end
return n
