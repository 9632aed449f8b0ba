-- Destinations: a webhook's endpoint `scheme://host:port` (field `dest` of its task), shared by
-- every worker process and host through these keys (storage/keys.py):
--   dest_key(d)       hash  the circuit breaker: state (closed|open|half_open; absent: closed),
--                           failures (consecutive), cooldown_ms, open_until, probe (task id),
--                           last_error, updated_at
--   inflight_key(d)   zset  task id -> lease expiry: the slots in use (at most `cap` live ones)
--   parked_key(d)     zset  task id -> parked at: tasks waiting for the destination
--   DESTS             zset  d -> last activity: the owner of the three keys above
--   DESTS_DUE         zset  d -> when the reconciler looks at it next (it has parked tasks)
-- A parked task keeps its status and attempt count, has no lease and no message (parking moves
-- its token on, so no copy of its old message can run it); it costs nothing while it waits. A
-- freed slot (FINISH) or the reconciler (WAKE) dispatches it again, with a new token.

-- The reconciler looks again this often at a destination with parked tasks and free slots: a
-- backstop, since a finished attempt hands its slot to a parked task at once.
local BUSY_LOOK_MS = 1000
-- Parked tasks one script dispatches for one destination (the next tick does the rest).
local RELEASE_MAX = 100

-- Live slots; the expired ones (a worker died, RECLAIM has not run yet) are only dropped once
-- the count reaches the cap, so a claim under the cap costs one ZCARD.
local function slots_used(d, now, cap)
  local n = redis.call('ZCARD', inflight_key(d))
  if n >= cap then
    redis.call('ZREMRANGEBYSCORE', inflight_key(d), '-inf', '(' .. now)
    n = redis.call('ZCARD', inflight_key(d))
  end
  return n
end

-- The probe of a half-open destination is live while it holds its slot.
local function probe_live(d, probe, now)
  if not probe then return false end
  local held_until = redis.call('ZSCORE', inflight_key(d), probe)
  return held_until and tonumber(held_until) > now
end

-- Dispatch the parked task `id` again, at the front of its queue, holding a slot for it until
-- `hold_until` (its claim takes the slot over; if its message is lost, the slot frees itself).
-- -> true if dispatched (a cancelled or deleted task is only dropped from the parked set).
local function unpark(d, id, now, hold_until)
  redis.call('ZREM', parked_key(d), id)
  local key = task_key(id)
  local found = redis.call('HMGET', key, 'status', 'queue', 'parked')
  if not found[3] or (found[1] ~= 'pending' and found[1] ~= 'retrying') then return false end
  local token = redis.call('HINCRBY', key, 'token', 1)
  redis.call('HDEL', key, 'parked', 'parked_at')
  redis.call('HSET', key, 'updated_at', now)
  redis.call('ZADD', inflight_key(d), hold_until, id)
  dispatch(id, token, found[2], now, true)
  return true
end

-- Dispatch up to `n` of the oldest parked tasks of d, the oldest first in the queue. -> how many.
local function release(d, n, now, hold_until)
  local done = 0
  while done < n do
    local ids = redis.call('ZRANGE', parked_key(d), 0, n - done - 1)
    if #ids == 0 then break end
    for i = #ids, 1, -1 do
      if unpark(d, ids[i], now, hold_until) then done = done + 1 end
    end
  end
  return done
end

-- Dispatch the oldest parked task as the probe of a due open (or probe-less half-open)
-- destination. -> true if there was one.
local function send_probe(d, now, hold_until)
  while true do
    local ids = redis.call('ZRANGE', parked_key(d), 0, 0)
    if #ids == 0 then return false end
    if unpark(d, ids[1], now, hold_until) then
      redis.call('HSET', dest_key(d), 'state', 'half_open', 'probe', ids[1], 'updated_at', now)
      return true
    end
  end
end

local function open_breaker(d, now, cooldown_ms)
  redis.call('HSET', dest_key(d), 'state', 'open', 'cooldown_ms', cooldown_ms,
    'open_until', now + cooldown_ms, 'updated_at', now)
  redis.call('HDEL', dest_key(d), 'probe')
  redis.call('ZADD', DESTS_DUE, now + cooldown_ms, d)
end

-- CLAIM of task `id` for d: nil (it takes a slot until `lease_until`) or why it must wait:
-- 'open' (the breaker is open, or half-open with its probe under way) or 'busy' (at the cap).
local function take_slot(d, id, now, lease_until, cap)
  local dk = dest_key(d)
  local b = redis.call('HMGET', dk, 'state', 'open_until', 'probe')
  local state = b[1]
  if state == 'open' then
    if now < tonumber(b[2]) then return 'open' end
    redis.call('HSET', dk, 'state', 'half_open', 'probe', id, 'updated_at', now)
  elseif state == 'half_open' then
    if b[3] ~= id then
      if probe_live(d, b[3], now) then return 'open' end
      redis.call('HSET', dk, 'probe', id, 'updated_at', now)
    end
  else
    local used = slots_used(d, now, cap)
    if used >= cap and not redis.call('ZSCORE', inflight_key(d), id) then
      return 'busy'  -- (a task released to a slot holds it already)
    end
    -- Activity is noted when a destination gets busy, not on every claim: the reconciler, before
    -- it forgets an idle one, checks it has nothing in flight.
    if used > 0 then state = 'busy' end
  end
  redis.call('ZADD', inflight_key(d), lease_until, id)
  if state ~= 'busy' then redis.call('ZADD', DESTS, now, d) end
  return nil
end

-- Park task `id` for d, for `why` (a slot held for it, if it was released to one, is freed).
local function park(d, id, now, why)
  local key = task_key(id)
  redis.call('HINCRBY', key, 'token', 1)
  redis.call('HSET', key, 'parked', why, 'parked_at', now, 'updated_at', now)
  redis.call('ZREM', inflight_key(d), id)
  redis.call('ZADD', parked_key(d), now, id)
  redis.call('ZADD', DESTS, now, d)
  local look = now + BUSY_LOOK_MS
  if why == 'open' then
    local b = redis.call('HMGET', dest_key(d), 'state', 'open_until', 'probe')
    if b[1] == 'open' then look = tonumber(b[2]) end
  end
  redis.call('ZADD', DESTS_DUE, 'LT', look, d)
end

-- FINISH of task `id`'s attempt for d: free its slot, feed the breaker with `signal` ('up': the
-- receiver answered below 500; 'down': a timeout, connection error or 5xx; '': neither), and
-- hand free slots of a closed destination to its parked tasks.
-- lim = {cap, threshold, cooldown_ms, max_cooldown_ms, hold_ms}
local function settle(d, id, now, signal, err, lim)
  redis.call('ZREM', inflight_key(d), id)
  local dk = dest_key(d)
  local b = redis.call('HMGET', dk, 'state', 'failures', 'cooldown_ms', 'probe')
  local state, failures = b[1] or 'closed', tonumber(b[2]) or 0
  if signal == 'up' then
    if state ~= 'closed' then
      redis.call('HSET', dk, 'state', 'closed', 'failures', 0, 'updated_at', now)
      redis.call('HDEL', dk, 'cooldown_ms', 'open_until', 'probe')
      state = 'closed'
    elseif failures > 0 then
      redis.call('HSET', dk, 'failures', 0, 'updated_at', now)
    end
  elseif signal == 'down' then
    failures = redis.call('HINCRBY', dk, 'failures', 1)
    redis.call('HSET', dk, 'last_error', err, 'updated_at', now)
    if state == 'half_open' and b[4] == id then
      open_breaker(d, now, math.min((tonumber(b[3]) or lim[3]) * 2, lim[4]))
      return
    elseif state == 'closed' and failures >= lim[2] then
      open_breaker(d, now, lim[3])
      return
    end
  end
  if state == 'closed' and redis.call('EXISTS', parked_key(d)) == 1 then
    local free = lim[1] - slots_used(d, now, lim[1])
    if free > 0 then release(d, math.min(free, RELEASE_MAX), now, now + lim[5]) end
  end
end

-- RECLAIM of task `id` (its lease expired) for d: free its slot; a lost probe counts as a
-- failed one.
local function slot_lost(d, id, now, cooldown_ms, max_cooldown_ms)
  redis.call('ZREM', inflight_key(d), id)
  local b = redis.call('HMGET', dest_key(d), 'state', 'cooldown_ms', 'probe')
  if b[1] == 'half_open' and b[3] == id then
    redis.call('HINCRBY', dest_key(d), 'failures', 1)
    redis.call('HSET', dest_key(d), 'last_error', 'the probe\'s worker was lost')
    open_breaker(d, now, math.min((tonumber(b[2]) or cooldown_ms) * 2, max_cooldown_ms))
  end
end
