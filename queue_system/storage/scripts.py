"""Lua scripts: each state change of a task is one atomic script.

Every script gets KEYS[1] = the key prefix and builds key names the way `keys.py` documents them.
Statuses each script accepts mirror `domain.models.TRANSITIONS` (tests/test_state_machine.py checks).
Dispatching a task writes a Dramatiq message straight into Dramatiq's Redis queue (the same two
commands as Dramatiq's own `enqueue`), so creating a task and enqueueing it is one atomic round
trip: a task is never stored without its message, nor queued without its record.
"""

from __future__ import annotations

_HEADER = """
local P = KEYS[1]
local function tkey(id) return P .. ':task:' .. id end
local function hkey(id) return P .. ':task:' .. id .. ':history' end
-- The payload lives in its own string key: kept out of the hash, the hash's values stay small
-- and Redis stores it as a compact listpack (about a third of the memory).
local function pkey(id) return P .. ':task:' .. id .. ':payload' end
local function skey(s) return P .. ':idx:status:' .. s end

local function move_status(id, old, new, created)
  if old then redis.call('ZREM', skey(old), id) end
  redis.call('ZADD', skey(new), created, id)
end

local function dispatch(id, token, queue, actor, now)
  -- One actor per queue (run_task, run_task_priority): Dramatiq orders work by actor priority.
  if queue ~= 'default' then actor = actor .. '_' .. queue end
  local mid = id .. '#' .. token
  local msg = cjson.encode({
    queue_name = queue, actor_name = actor, args = {id, tonumber(token)}, kwargs = {},
    options = {redis_message_id = mid}, message_id = mid, message_timestamp = tonumber(now)})
  local q = P .. ':dramatiq:' .. queue
  redis.call('HSET', q .. '.msgs', mid, msg)
  redis.call('RPUSH', q, mid)
end

local function finish_final(id, now, retention)
  redis.call('ZADD', P .. ':expiry', now + retention, id)
  -- A backstop expiry one day past the sweeper's, in case no worker runs to sweep.
  redis.call('PEXPIRE', tkey(id), retention + 86400000)
  redis.call('PEXPIRE', hkey(id), retention + 86400000)
  redis.call('PEXPIRE', pkey(id), retention + 86400000)
end

local function purge(id)
  local f = redis.call('HMGET', tkey(id), 'type', 'status')
  if f[1] then redis.call('ZREM', P .. ':idx:type:' .. f[1], id) end
  if f[2] then redis.call('ZREM', skey(f[2]), id) end
  redis.call('ZREM', P .. ':idx:all', id)
  redis.call('ZREM', P .. ':schedule', id)
  redis.call('ZREM', P .. ':leases', id)
  redis.call('ZREM', P .. ':expiry', id)
  return redis.call('DEL', tkey(id), hkey(id), pkey(id))
end

local function push_history(id, entry, max_history)
  if redis.call('RPUSH', hkey(id), entry) > max_history then
    redis.call('LTRIM', hkey(id), -max_history, -1)
  end
end
"""

# ARGV: id, type, queue, now, status (pending|scheduled), due_ms, actor, fingerprint, payload,
#       field, value, ...
# -> {1} created | {0, fingerprint} an id that exists already
CREATE = (
    _HEADER
    + """
local id, typ, queue, now, status = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local due, actor, fp = ARGV[6], ARGV[7], ARGV[8]
local k = tkey(id)
if redis.call('EXISTS', k) == 1 then
  return {0, redis.call('HGET', k, 'fingerprint') or ''}
end
redis.call('HSET', k, 'id', id, 'type', typ, 'queue', queue, 'status', status, 'attempts', 0,
  'created_at', now, 'updated_at', now, 'token', 1, 'fingerprint', fp)
for i = 10, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end
redis.call('SET', pkey(id), ARGV[9])
redis.call('ZADD', P .. ':idx:all', now, id)
redis.call('ZADD', P .. ':idx:type:' .. typ, now, id)
move_status(id, false, status, now)
if status == 'scheduled' then
  redis.call('HSET', k, 'next_attempt_at', due)
  redis.call('ZADD', P .. ':schedule', due, id)
else
  dispatch(id, 1, queue, actor, now)
end
return {1}
"""
)

# ARGV: id, token, now, lease_until
# -> {'ok', created_at, type, queue, attempts, retry, timeout_ms, retried_at, attempt_base, trigger, payload}
#    | {'missing'} | {'stale'} | {'skip', status}
# Only what running the attempt needs comes back, in a fixed order ('' for an absent field).
CLAIM = (
    _HEADER
    + """
local id, token, now, lease = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local k = tkey(id)
local f = redis.call('HMGET', k, 'status', 'token', 'created_at', 'type', 'queue', 'attempts', 'retry',
  'timeout_ms', 'retried_at', 'attempt_base', 'trigger')
if not f[1] then return {'missing'} end
if f[1] ~= 'pending' and f[1] ~= 'retrying' then return {'skip', f[1]} end
if f[2] ~= token then return {'stale'} end
local attempts = (tonumber(f[6]) or 0) + 1
redis.call('HSET', k, 'status', 'processing', 'attempts', attempts, 'updated_at', now, 'started_at', now)
if f[11] then redis.call('HDEL', k, 'trigger') end
move_status(id, f[1], 'processing', f[3])
redis.call('ZADD', P .. ':leases', lease, id)
return {'ok', f[3], f[4], f[5], attempts, f[7] or '', f[8] or '', f[9] or '', f[10] or '', f[11] or '',
  redis.call('GET', pkey(id)) or 'null'}
"""
)

# ARGV: id, token, now, status, next_at|'', retention, history_entry, max_history, broker_id|'', queue,
#       field, value|'', ...   (an empty value deletes the field)
# -> {recorded, acked}: recorded 0 = stale (the attempt is still added to history); acked 1 = this
# attempt's Dramatiq message was acknowledged here.
# With a broker id, the script also does Dramatiq's ack of the message `id#token` (the same SREM +
# HDEL and heartbeat as Dramatiq's dispatch.lua), so recording the outcome and acknowledging the
# message are one atomic step, and the worker saves a round trip per task.
FINISH = (
    _HEADER
    + """
local id, token, now, status, next_at = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local retention, entry, max_history = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local broker, queue = ARGV[9], ARGV[10]
local acked = 0
if broker ~= '' then
  local D = P .. ':dramatiq:'
  local mid = id .. '#' .. token
  if redis.call('SREM', D .. '__acks__.' .. broker .. '.' .. queue, mid) == 1 then
    redis.call('HDEL', D .. queue .. '.msgs', mid)
    acked = 1
  end
  redis.call('ZADD', D .. '__heartbeats__', now, broker)
end
local k = tkey(id)
local f = redis.call('HMGET', k, 'status', 'token', 'created_at')
if not f[1] then return {0, acked} end
-- The same token and no longer processing: only this attempt's own finish moved it on (every
-- other transition changes the token), so this is a repeat after a lost reply: already done.
if f[2] == token and f[1] ~= 'processing' then return {1, acked} end
push_history(id, entry, max_history)
if f[1] ~= 'processing' or f[2] ~= token then return {0, acked} end
local set, del = {'status', status, 'updated_at', now}, {'started_at', 'lost'}
for i = 11, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    table.insert(del, ARGV[i])
  else
    table.insert(set, ARGV[i])
    table.insert(set, ARGV[i + 1])
  end
end
move_status(id, 'processing', status, f[3])
redis.call('ZREM', P .. ':leases', id)
if status == 'retrying' then
  table.insert(set, 'next_attempt_at')
  table.insert(set, next_at)
  redis.call('ZADD', P .. ':schedule', next_at, id)
else
  table.insert(del, 'next_attempt_at')
  finish_final(id, now, retention)
end
redis.call('HSET', k, unpack(set))
redis.call('HDEL', k, unpack(del))
return {1, acked}
"""
)

# ARGV: now, limit, actor -> number of tasks dispatched
PROMOTE = (
    _HEADER
    + """
local now, limit, actor = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', P .. ':schedule', '-inf', now, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', P .. ':schedule', id)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'status', 'queue', 'created_at')
  if f[1] == 'retrying' or f[1] == 'scheduled' then
    local token = redis.call('HINCRBY', k, 'token', 1)
    if f[1] == 'scheduled' then
      redis.call('HSET', k, 'status', 'pending', 'updated_at', now)
      move_status(id, 'scheduled', 'pending', f[3])
    end
    dispatch(id, token, f[2], actor, now)
    n = n + 1
  end
end
return n
"""
)

# ARGV: now, limit, actor, max_history, max_lost, retention -> number of tasks recovered from
# expired leases. A task whose worker was lost `max_lost` times in a row fails instead of being
# dispatched again: it is probably what kills its worker (a poison task: OOM, a segfault).
RECLAIM = (
    _HEADER
    + """
local now, limit, actor, max_history = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local max_lost, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', now, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', P .. ':leases', id)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'status', 'queue', 'created_at', 'attempts', 'started_at')
  if f[1] == 'processing' then
    local token = redis.call('HINCRBY', k, 'token', 1)
    local lost = redis.call('HINCRBY', k, 'lost', 1)
    local err = 'worker lost: lease expired before the attempt finished'
    local started = tonumber(f[5]) or now
    push_history(id, cjson.encode({n = tonumber(f[4]), started_at = started, duration_ms = now - started,
      outcome = 'lost', error = err, trigger = 'auto'}), max_history)
    redis.call('HDEL', k, 'started_at')
    if lost >= max_lost then
      err = err .. '; gave up after ' .. lost .. ' lost attempts in a row (does the task kill its worker?)'
      redis.call('HSET', k, 'status', 'failed', 'updated_at', now, 'completed_at', now, 'last_error', err)
      redis.call('HDEL', k, 'next_attempt_at')
      move_status(id, 'processing', 'failed', f[3])
      finish_final(id, now, retention)
    else
      redis.call('HSET', k, 'status', 'retrying', 'updated_at', now, 'next_attempt_at', now,
        'last_error', err)
      move_status(id, 'processing', 'retrying', f[3])
      dispatch(id, token, f[2], actor, now)
    end
    n = n + 1
  end
end
return n
"""
)

# ARGV: lease_until, id1, token1, id2, token2, ... -> number of leases extended
RENEW = (
    _HEADER
    + """
local lease, n = ARGV[1], 0
for i = 2, #ARGV, 2 do
  local f = redis.call('HMGET', tkey(ARGV[i]), 'status', 'token')
  if f[1] == 'processing' and f[2] == ARGV[i + 1] then
    redis.call('ZADD', P .. ':leases', 'XX', lease, ARGV[i])
    n = n + 1
  end
end
return n
"""
)

# ARGV: id, now, retention -> {'ok'} | {'missing'} | {'bad', status}
CANCEL = (
    _HEADER
    + """
local id, now, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local k = tkey(id)
local f = redis.call('HMGET', k, 'status', 'created_at')
if not f[1] then return {'missing'} end
if f[1] ~= 'pending' and f[1] ~= 'scheduled' and f[1] ~= 'retrying' then return {'bad', f[1]} end
redis.call('HSET', k, 'status', 'cancelled', 'updated_at', now, 'completed_at', now)
redis.call('HDEL', k, 'next_attempt_at')
move_status(id, f[1], 'cancelled', f[2])
redis.call('ZREM', P .. ':schedule', id)
finish_final(id, now, retention)
return {'ok'}
"""
)

# ARGV: id, now, actor -> {'ok'} | {'missing'} | {'bad', status}
# A failed or cancelled task runs again now; its history is kept, and the retry window and
# retry count start afresh from here.
RETRY = (
    _HEADER
    + """
local id, now, actor = ARGV[1], ARGV[2], ARGV[3]
local k = tkey(id)
local f = redis.call('HMGET', k, 'status', 'created_at', 'queue', 'attempts')
if not f[1] then return {'missing'} end
if f[1] ~= 'failed' and f[1] ~= 'cancelled' then return {'bad', f[1]} end
local token = redis.call('HINCRBY', k, 'token', 1)
redis.call('HSET', k, 'status', 'pending', 'updated_at', now, 'retried_at', now, 'attempt_base', f[4],
  'trigger', 'manual')
redis.call('HDEL', k, 'completed_at', 'next_attempt_at', 'lost')
move_status(id, f[1], 'pending', f[2])
redis.call('ZREM', P .. ':expiry', id)
redis.call('PERSIST', k)
redis.call('PERSIST', hkey(id))
redis.call('PERSIST', pkey(id))
dispatch(id, token, f[3], actor, now)
return {'ok'}
"""
)

# ARGV: id -> 1 deleted | 0 missing
DELETE = (
    _HEADER
    + """
return purge(ARGV[1]) > 0 and 1 or 0
"""
)

# ARGV: status (pending|retrying), offset, limit, now, min_age_ms, actor
# -> {checked, redispatched}: of `limit` tasks of that status from rank `offset` (oldest first),
# dispatch again those that have waited `min_age_ms` since their last change and whose message is
# gone: dead-lettered by Dramatiq, or lost with an outage that outlasted the worker's patience.
# A retrying task that waits in the schedule has no message yet and is left alone. The new token
# makes any surviving copy of the old message stale, so a false alarm costs a skipped message.
REDISPATCH = (
    _HEADER
    + """
local status, offset, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local min_age, actor = tonumber(ARGV[5]), ARGV[6]
local ids = redis.call('ZRANGE', skey(status), offset, offset + limit - 1)
local n = 0
for _, id in ipairs(ids) do
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'status', 'token', 'queue', 'updated_at')
  if f[1] == status and (tonumber(f[4]) or now) <= now - min_age
      and not redis.call('ZSCORE', P .. ':schedule', id)
      and redis.call('HEXISTS', P .. ':dramatiq:' .. f[3] .. '.msgs', id .. '#' .. f[2]) == 0 then
    local token = redis.call('HINCRBY', k, 'token', 1)
    redis.call('HSET', k, 'updated_at', now)
    dispatch(id, token, f[3], actor, now)
    n = n + 1
  end
end
return {#ids, n}
"""
)

# ARGV: now, limit -> number of finished tasks purged after their retention
SWEEP = (
    _HEADER
    + """
local ids = redis.call('ZRANGEBYSCORE', P .. ':expiry', '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do purge(id) end
return #ids
"""
)

# ARGV: index key, filters (JSON: {field: [allowed values]}), min score, max score, cursor score|'',
#       cursor id, limit, max scan
# -> {{id, score, ...}, more (0|1), last scanned id, last scanned score}; newest first, ties by id
# descending. `more` with fewer than `limit` rows means the scan bound was hit: resume from the
# last scanned position.
PAGE = (
    _HEADER
    + """
local key, filters, low, high = ARGV[1], cjson.decode(ARGV[2]), ARGV[3], ARGV[4]
local cs, cid, limit, max_scan = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local wanted = {}
for name, values in pairs(filters) do
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  wanted[name] = set
end
local function matches(id)
  for name, set in pairs(wanted) do
    local v = redis.call('HGET', tkey(id), name)
    if not v or not set[v] then return false end
  end
  return true
end
local out, scanned, offset = {}, 0, 0
local top = high
local csn = tonumber(cs)
if csn ~= nil and (high == '+inf' or csn < tonumber(high)) then top = cs end
local last_id, last_sc = '', ''
while scanned < max_scan do
  local batch = redis.call('ZREVRANGEBYSCORE', key, top, low, 'WITHSCORES', 'LIMIT', offset, 200)
  if #batch == 0 then return {out, 0, last_id, last_sc} end
  for i = 1, #batch, 2 do
    local id, sc = batch[i], tonumber(batch[i + 1])
    if csn == nil or sc < csn or (sc == csn and id < cid) then
      if matches(id) then
        if #out >= limit * 2 then return {out, 1, last_id, last_sc} end
        table.insert(out, id)
        table.insert(out, batch[i + 1])
      end
    end
    scanned = scanned + 1
    last_id, last_sc = id, batch[i + 1]
  end
  offset = offset + 200
end
return {out, 1, last_id, last_sc}
"""
)
