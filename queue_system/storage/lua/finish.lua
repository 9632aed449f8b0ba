-- finish: record each attempt's outcome given, apply its decision, and acknowledge its message.
-- KEYS[1]  the key prefix
-- ARGV     storage/script_args.py FinishArgs (named above): retention_ms and the destinations'
--          limits (host_cap, threshold, cooldown_ms, max_cooldown_ms, hold_ms, endpoint_cap);
--          then, per attempt, its FinishEach: id, token, now, status (completed|retrying|failed),
--          next_attempt_at|'' (retrying), entry (the attempt's history entry, JSON), result
--          JSON|'' (completed), last_error|'' (retrying, failed); the message to acknowledge:
--          consumer (its broker's id; '': none) and queue (Dramatiq's own ack, done here so
--          recording and acknowledging are one atomic step); signal, the attempt's breaker signal
--          ('up'|'endpoint'|'host'|'': lua/destinations.lua `settle`; '': no destination)
-- Returns  per attempt, in order, {recorded, acked}: recorded 0 = stale (the lease was taken
--          over: the attempt is only added to the history); acked 1 = the message was
--          acknowledged here
-- A batch of outcomes (the delivery loop's completions) is one call: the script's fixed cost
-- (its helpers, its arguments) is paid once. Each attempt's own step is safe to repeat: if the
-- script fails half-way, the caller sends the batch again and the ones already done say so.
-- `now` stays the string the caller sent: Redis takes it as is, where a Lua number would be
-- formatted back with sprintf on every redis.call (lua/common.lua `int`).
local lim = {tonumber(host_cap), tonumber(threshold), tonumber(cooldown_ms), tonumber(max_cooldown_ms),
  tonumber(hold_ms), tonumber(endpoint_cap)}
-- What this call's attempts share, so each costs Redis once per call, not once per attempt:
-- the dashboard's per-minute counts (minute key -> field -> n, one HINCRBY each at the end) and
-- the hosts whose breaker this call saw closed and clean (lua/destinations.lua `settle`).
local counts, clean_hosts = {}, {}

-- The fields an outcome leaves behind, by status: deleted only when present (the HMGET below
-- says), so a first attempt's completion costs no HDEL. (`started_at`: written by the claims of
-- earlier versions; the claim's `updated_at` says it now.)
local STALE = {completed = {'started_at', 'lost', 'last_error', 'next_attempt_at'},
  retrying = {'started_at', 'lost'}, failed = {'started_at', 'lost', 'next_attempt_at'}}
local FOUND_AT = {started_at = 6, lost = 7, last_error = 8, next_attempt_at = 9}

local function drop_stale(key, status, found)
  local gone = {}
  for _, field in ipairs(STALE[status]) do
    if found[FOUND_AT[field]] then gone[#gone + 1] = field end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
end

local function finish(id, token, now, status, next_attempt_at, entry, result, last_error, consumer, queue, signal)
  local acked = ack_message(consumer, queue, id, token)
  local key = task_key(id)
  local found = redis.call('HMGET', key, 'status', 'token', 'created_at', 'dest', 'ep', 'started_at', 'lost',
    'last_error', 'next_attempt_at')
  local current, current_token, created_at, dest = found[1], found[2], found[3], found[4]
  if not current then return {0, acked} end
  -- The same token and no longer processing: only this attempt's own finish moved it on (every
  -- other transition changes the token), so this is a repeat after a lost reply: already done.
  if current_token == token and current ~= 'processing' then return {1, acked} end
  push_history(id, entry, MAX_HISTORY)
  if current ~= 'processing' or current_token ~= token then return {0, acked} end
  move_status(id, 'processing', status, created_at)
  redis.call('ZREM', LEASES, id)
  if status == 'completed' then
    redis.call('HSET', key, 'status', status, 'updated_at', now, 'result', result, 'completed_at', now)
    finish_final(id, now, retention_ms)
  elseif status == 'retrying' then
    redis.call('HSET', key, 'status', status, 'updated_at', now, 'last_error', last_error,
      'next_attempt_at', next_attempt_at)
    redis.call('ZADD', SCHEDULE, next_attempt_at, id)
  else
    redis.call('HSET', key, 'status', status, 'updated_at', now, 'last_error', last_error, 'completed_at', now)
    finish_final(id, now, retention_ms)
  end
  drop_stale(key, status, found)
  if dest then
    settle(dest, endpoint_of(dest, found[5]), id, tonumber(now), signal, last_error, lim, clean_hosts)
  end
  -- The dashboard's per-minute counts (attempts = completed + retried + failed: each is counted here).
  local minute = stats_key(int(math.floor(now / 60000)))
  local field = status == 'retrying' and 'retried' or status
  counts[minute] = counts[minute] or {}
  counts[minute][field] = (counts[minute][field] or 0) + 1
  return {1, acked}
end

local replies = {}
for i = N_ARGS + 1, #ARGV, EACH_ARGS do
  replies[#replies + 1] = finish(unpack(ARGV, i, i + EACH_ARGS - 1))
end
for minute, fields in pairs(counts) do
  for field, n in pairs(fields) do
    if redis.call('HINCRBY', minute, field, int(n)) == n then  -- a new minute's first count
      redis.call('PEXPIRE', minute, '7200000')
    end
  end
end
return replies
