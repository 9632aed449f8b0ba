-- redispatch: dispatch again the waiting tasks whose message is gone.
-- KEYS[1]  the key prefix
-- ARGV     status (pending|retrying), offset, limit, now, min_age_ms
-- Returns  {checked, redispatched}: of `limit` tasks of that status from rank `offset` (oldest
--          first), those dispatched again
-- A task qualifies when it has waited `min_age_ms` since its last change and its message is gone
-- (dead-lettered by Dramatiq, or lost with an outage that outlasted the worker's patience). A
-- retrying task that waits in the schedule has no message yet and is left alone, and so is a
-- parked one (it waits for its destination: lua/destinations.lua), and a held one (its queue is
-- paused: lua/queues.lua). The new token
-- makes any surviving copy of the old message stale, so a false alarm costs a skipped message.
local wanted, offset, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local min_age = tonumber(ARGV[5])
local ids = redis.call('ZRANGE', status_index(wanted), offset, offset + limit - 1)
local n = 0
for _, id in ipairs(ids) do
  local key = task_key(id)
  local found = redis.call('HMGET', key, 'status', 'token', 'queue', 'updated_at', 'parked', 'held')
  local status, token, queue, updated_at = found[1], found[2], found[3], found[4]
  if status == wanted and not found[5] and not found[6] and (tonumber(updated_at) or now) <= now - min_age
      and not redis.call('ZSCORE', SCHEDULE, id)
      and redis.call('HEXISTS', messages_key(queue), message_id(id, token)) == 0 then
    local new_token = redis.call('HINCRBY', key, 'token', 1)
    redis.call('HSET', key, 'updated_at', now)
    dispatch(id, new_token, queue, now)
    n = n + 1
  end
end
return {#ids, n}
