-- reclaim: recover the processing tasks whose lease expired (their worker died or stalled).
-- KEYS[1]  the key prefix
-- ARGV     now, limit, max_history, max_lost, retention_ms, cooldown_ms, max_cooldown_ms
-- Returns  the number of tasks recovered
-- Each gets a `lost` attempt and is dispatched again with a new token, as `retrying`; a task
-- whose worker was lost `max_lost` times in a row fails instead: it is probably what kills its
-- worker (a poison task: OOM, a segfault). Its host's and endpoint's slots are freed; a lost probe
-- reopens its level's breaker, as a failed one does.
local now, limit, max_history = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_lost, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local cooldown, max_cooldown = tonumber(ARGV[6]), tonumber(ARGV[7])
local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', LEASES, id)
  local key = task_key(id)
  -- (A processing task's `updated_at` is its claim's time: lua/claim.lua; `started_at`, where
  -- there is one, was written by the claim of an earlier version.)
  local found = redis.call('HMGET', key, 'status', 'queue', 'created_at', 'attempts', 'started_at', 'dest',
    'ep', 'updated_at')
  local status, queue, created_at, attempts, started_at = found[1], found[2], found[3], found[4], found[5]
  if status == 'processing' then
    if found[6] then slot_lost(found[6], endpoint_of(found[6], found[7]), id, now, cooldown, max_cooldown) end
    local token = redis.call('HINCRBY', key, 'token', 1)
    local lost = redis.call('HINCRBY', key, 'lost', 1)
    local err = 'worker lost: lease expired before the attempt finished'
    local started = tonumber(started_at or found[8]) or now
    push_history(id, cjson.encode({n = tonumber(attempts), started_at = started, duration_ms = now - started,
      outcome = 'lost', error = err, trigger = 'auto'}), max_history)
    redis.call('HDEL', key, 'started_at')
    if lost >= max_lost then
      err = err .. '; gave up after ' .. lost .. ' lost attempts in a row (does the task kill its worker?)'
      redis.call('HSET', key, 'status', 'failed', 'updated_at', now, 'completed_at', now, 'last_error', err)
      redis.call('HDEL', key, 'next_attempt_at')
      move_status(id, 'processing', 'failed', created_at)
      finish_final(id, now, retention)
    else
      redis.call('HSET', key, 'status', 'retrying', 'updated_at', now, 'next_attempt_at', now,
        'last_error', err)
      move_status(id, 'processing', 'retrying', created_at)
      dispatch(id, token, queue, now)
    end
    n = n + 1
  end
end
return n
