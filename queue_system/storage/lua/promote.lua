-- promote: dispatch the scheduled and retrying tasks that are due, each with a new token.
-- KEYS[1]  the key prefix
-- ARGV     now, limit
-- Returns  the number of tasks dispatched
-- A scheduled task becomes pending; a retrying one stays retrying.
local now, limit = ARGV[1], tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', SCHEDULE, '-inf', now, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', SCHEDULE, id)
  local key = task_key(id)
  local found = redis.call('HMGET', key, 'status', 'queue', 'created_at')
  local status, queue, created_at = found[1], found[2], found[3]
  if status == 'retrying' or status == 'scheduled' then
    local token = redis.call('HINCRBY', key, 'token', 1)
    if status == 'scheduled' then
      redis.call('HSET', key, 'status', 'pending', 'updated_at', now)
      move_status(id, 'scheduled', 'pending', created_at)
    end
    dispatch(id, token, queue, now)
    n = n + 1
  end
end
return n
