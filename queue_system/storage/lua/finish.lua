-- finish: record an attempt's outcome, apply the decision, and acknowledge its message.
-- KEYS[1]  the key prefix
-- ARGV     id, token, now, status (completed|retrying|failed), next_attempt_at|'' (retrying),
--          retention_ms, history entry (JSON), max_history, result JSON|'' (completed),
--          last_error|'' (retrying, failed),
--          then the message to acknowledge, or '' x 5: fetched-set key, messages key, message id,
--          heartbeats key, consumer id (worker/broker.py builds them: Dramatiq's own ack, done
--          here so recording and acknowledging are one atomic step),
--          then, for a task with a destination only: the breaker signal of the attempt
--          ('up'|'endpoint'|'host'|'': lua/destinations.lua `settle`), host cap, threshold,
--          cooldown_ms, max_cooldown_ms, hold_ms, endpoint cap (the destinations' limits)
-- Returns  {recorded, acked}: recorded 0 = stale (the lease was taken over: the attempt is only
--          added to the history); acked 1 = the message was acknowledged here
-- `now` stays the string the caller sent: Redis takes it as is, where a Lua number would be
-- formatted back with sprintf on every redis.call (lua/common.lua `int`).
local id, token, now, status, next_attempt_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local retention, entry, max_history = ARGV[6], ARGV[7], tonumber(ARGV[8])
local result, last_error = ARGV[9], ARGV[10]
-- ARGV[11..15]: the message to acknowledge (storage/worker_store.py `ack_args`, in order).
local acked = ack_message(ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], now)
-- ARGV[16]: the breaker signal; ARGV[17..22]: the limits (storage/worker_store.py `limit_args`).
local signal, has_limits = ARGV[16], ARGV[22]
local key = task_key(id)
local found = redis.call('HMGET', key, 'status', 'token', 'created_at', 'dest', 'ep')
local current, current_token, created_at, dest = found[1], found[2], found[3], found[4]
if not current then return {0, acked} end
-- The same token and no longer processing: only this attempt's own finish moved it on (every
-- other transition changes the token), so this is a repeat after a lost reply: already done.
if current_token == token and current ~= 'processing' then return {1, acked} end
push_history(id, entry, max_history)
if current ~= 'processing' or current_token ~= token then return {0, acked} end
local set, del = {'status', status, 'updated_at', now}, {'started_at', 'lost'}
if status == 'completed' then
  table.insert(set, 'result')
  table.insert(set, result)
  table.insert(del, 'last_error')
else
  table.insert(set, 'last_error')
  table.insert(set, last_error)
end
move_status(id, 'processing', status, created_at)
redis.call('ZREM', LEASES, id)
if status == 'retrying' then
  table.insert(set, 'next_attempt_at')
  table.insert(set, next_attempt_at)
  redis.call('ZADD', SCHEDULE, next_attempt_at, id)
else
  table.insert(set, 'completed_at')
  table.insert(set, now)
  table.insert(del, 'next_attempt_at')
  finish_final(id, now, retention)
end
redis.call('HSET', key, unpack(set))
redis.call('HDEL', key, unpack(del))
if dest and has_limits then
  settle(dest, endpoint_of(dest, found[5]), id, tonumber(now), signal, last_error, {tonumber(ARGV[17]),
    tonumber(ARGV[18]), tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21]), tonumber(ARGV[22])})
elseif dest then  -- (a caller that did not say: at least the slots are freed)
  redis.call('ZREM', inflight_key(dest), id)
  redis.call('ZREM', ep_inflight_key(endpoint_of(dest, found[5])), id)
end
-- The dashboard's per-minute counts (attempts = completed + retried + failed: each is counted here).
local minute = stats_key(int(math.floor(now / 60000)))
if redis.call('HINCRBY', minute, status == 'retrying' and 'retried' or status, '1') == 1 then
  redis.call('PEXPIRE', minute, '7200000')
end
return {1, acked}
