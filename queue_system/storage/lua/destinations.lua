-- Destinations, at two levels (domain/destinations.py), shared by every worker process and host.
-- A webhook task has `dest` (its host, `scheme://host:port`) and `ep`, its endpoint after the
-- host (the URL's path, or `#key`: the endpoint is dest .. ep; kept short, since every task
-- stores it). A task stored before endpoints existed has no `ep`: its host is its endpoint. Each level L (HOST, ENDPOINT below) has, for a unit d of it (storage/keys.py):
--   L.breaker(d)   hash  the circuit breaker: state (closed|open|half_open; absent: closed),
--                        failures (consecutive), cooldown_ms, open_until, probe (task id),
--                        last_error, updated_at
--   L.inflight(d)  zset  task id -> lease expiry: the slots in use (at most the level's cap)
--   L.parked(d)    zset  task id -> parked at: tasks waiting for this unit
--   L.owner        zset  d -> last activity: the owner of the three keys above
--   L.due          zset  d -> when the reconciler looks at it next (it has parked tasks)
-- A claimed task holds a slot at both levels. The host's breaker counts host-level facts (DNS,
-- refused, connect timeout, TLS); the endpoint's counts answers (5xx) and response timeouts.
-- A parked task keeps its status and attempt count, has no lease and no message (parking moves
-- its token on, so no copy of its old message can run it); it costs nothing while it waits. A
-- freed slot (FINISH) or the reconciler (WAKE) dispatches it again, with a new token.

local HOST = {name = 'host', breaker = dest_key, inflight = inflight_key, parked = parked_key,
  owner = DESTS, due = DESTS_DUE}
local ENDPOINT = {name = 'endpoint', breaker = endpoint_key, inflight = ep_inflight_key,
  parked = ep_parked_key, owner = ENDPOINTS, due = ENDPOINTS_DUE}

-- The reconciler looks again this often at a unit with parked tasks and free slots: a
-- backstop, since a finished attempt hands its slot to a parked task at once.
local BUSY_LOOK_MS = 1000
-- Parked tasks one script dispatches for one unit (the next tick does the rest).
local RELEASE_MAX = 100

-- The host of an endpoint (domain/destinations.py `host_of`): a host is its own.
local function host_of(e)
  return string.match(e, '^[^:/#]+://[^/#]+') or e
end

-- A task's endpoint from its host and its `ep` (none: stored before endpoints, its host).
local function endpoint_of(h, ep)
  return h .. (ep or '')
end

-- Live slots; the expired ones (a worker died, RECLAIM has not run yet) are only dropped once
-- the count reaches the cap, so a claim under the cap costs one ZCARD.
local function slots_used(L, d, now, cap)
  local n = redis.call('ZCARD', L.inflight(d))
  if n >= cap then
    redis.call('ZREMRANGEBYSCORE', L.inflight(d), '-inf', '(' .. now)
    n = redis.call('ZCARD', L.inflight(d))
  end
  return n
end

-- The probe of a half-open unit is live while it holds its slot.
local function probe_live(L, d, probe, now)
  if not probe then return false end
  local held_until = redis.call('ZSCORE', L.inflight(d), probe)
  return held_until and tonumber(held_until) > now
end

local function is_closed(L, d)
  local state = redis.call('HGET', L.breaker(d), 'state')
  return not state or state == 'closed'
end

-- Dispatch the parked task `id` of unit d again, at the front of its queue, holding a slot for
-- it until `hold_until` at L (and, released by its endpoint, at its host too: the release counted
-- the host's free slots); its claim takes the slots over; if its message is lost, they free
-- themselves. -> true if dispatched (a cancelled or deleted task is only dropped from the set).
local function unpark(L, d, id, now, hold_until)
  redis.call('ZREM', L.parked(d), id)
  local key = task_key(id)
  local found = redis.call('HMGET', key, 'status', 'queue', 'parked', 'dest')
  if not found[3] or (found[1] ~= 'pending' and found[1] ~= 'retrying') then return false end
  local token = redis.call('HINCRBY', key, 'token', 1)
  redis.call('HDEL', key, 'parked', 'parked_at', 'parked_level')
  redis.call('HSET', key, 'updated_at', now)
  redis.call('ZADD', L.inflight(d), hold_until, id)
  if L == ENDPOINT and found[4] then redis.call('ZADD', inflight_key(found[4]), hold_until, id) end
  dispatch(id, token, found[2], now, true)
  return true
end

-- Dispatch up to `n` of the oldest parked tasks of d, the oldest first in the queue. -> how many.
local function release(L, d, n, now, hold_until)
  local done = 0
  while done < n do
    local ids = redis.call('ZRANGE', L.parked(d), 0, n - done - 1)
    if #ids == 0 then break end
    for i = #ids, 1, -1 do
      if unpark(L, d, ids[i], now, hold_until) then done = done + 1 end
    end
  end
  return done
end

-- The free slots of d at L, and for an endpoint within its host's (none while the host is not
-- closed: its parked tasks go first, and its probe).
local function free_slots(L, d, now, caps)
  if L == HOST then return caps[1] - slots_used(HOST, d, now, caps[1]) end
  local h = host_of(d)
  if not is_closed(HOST, h) then return 0 end
  local free = caps[2] - slots_used(ENDPOINT, d, now, caps[2])
  return math.min(free, caps[1] - slots_used(HOST, h, now, caps[1]))
end

-- Dispatch the oldest parked task as the probe of a due open (or probe-less half-open) unit.
-- -> true if there was one.
local function send_probe(L, d, now, hold_until)
  while true do
    local ids = redis.call('ZRANGE', L.parked(d), 0, 0)
    if #ids == 0 then return false end
    if unpark(L, d, ids[1], now, hold_until) then
      redis.call('HSET', L.breaker(d), 'state', 'half_open', 'probe', ids[1], 'updated_at', now)
      return true
    end
  end
end

local function open_breaker(L, d, now, cooldown_ms)
  redis.call('HSET', L.breaker(d), 'state', 'open', 'cooldown_ms', cooldown_ms,
    'open_until', now + cooldown_ms, 'updated_at', now)
  redis.call('HDEL', L.breaker(d), 'probe')
  redis.call('ZADD', L.due, now + cooldown_ms, d)
end

-- The breaker of d at L for a claim of task `id`: 'open' (it must wait), 'probe' (it is due, or
-- its probe was lost: this task becomes the probe) or nil (closed, or this task is the probe).
local function gate(L, d, id, now)
  local b = redis.call('HMGET', L.breaker(d), 'state', 'open_until', 'probe')
  if b[1] == 'open' then
    if now < tonumber(b[2]) then return 'open' end
    return 'probe'
  elseif b[1] == 'half_open' and b[3] ~= id then
    if probe_live(L, d, b[3], now) then return 'open' end
    return 'probe'
  end
  return b[1] == 'half_open' and 'probe' or nil
end

-- Whether d at L has no room for task `id` (one released to a slot holds it already).
local function at_cap(L, d, id, now, cap)
  local used = slots_used(L, d, now, cap)
  if used >= cap and not redis.call('ZSCORE', L.inflight(d), id) then return true, used end
  return false, used
end

-- Task `id` takes its slot of d at L until `lease_until` (`probing`: as its probe). Activity is
-- noted when a unit gets busy (or probed), not on every claim: the reconciler, before it forgets
-- an idle one, checks it has nothing in flight. -> the slots in use now.
local function occupy(L, d, id, now, lease_until, probing, used)
  if probing then redis.call('HSET', L.breaker(d), 'state', 'half_open', 'probe', id, 'updated_at', now) end
  local added = redis.call('ZADD', L.inflight(d), lease_until, id)
  if probing or used == 0 then redis.call('ZADD', L.owner, now, d) end
  return used + added
end

-- CLAIM of task `id` for host h and endpoint e: nil (it takes a slot at both levels until
-- `lease_until`) or {level, why}: why 'open' (that breaker is open, or half-open with its probe
-- under way) or 'busy' (at that level's cap: a probe too waits for a slot, so neither cap is ever
-- exceeded). caps = {host cap, endpoint cap}
-- `seen` (optional): host -> its slots in use, for the hosts this script call found closed
-- (lua/claim.lua: a call's claims mostly share a host). Within one claim call a closed host
-- stays closed (only a probe's claim makes one half-open, and only finishes and reclaims open
-- one), and the count is kept exact here, so the call reads a host's breaker and slot count once,
-- not once per claim. The caller forgets a host whose slots it changed otherwise (park, hold).
local function take_slot(h, e, id, now, lease_until, caps, seen)
  seen = seen or {}
  local known = seen[h]
  local host_gate = nil
  if not known then
    host_gate = gate(HOST, h, id, now)
    if host_gate == 'open' then return {HOST, 'open'} end
  end
  local ep_gate = gate(ENDPOINT, e, id, now)
  if ep_gate == 'open' then return {ENDPOINT, 'open'} end
  local full, ep_used = at_cap(ENDPOINT, e, id, now, caps[2])
  if full then return {ENDPOINT, 'busy'} end
  local host_full, host_used = false, known
  if not known or known >= caps[1] then host_full, host_used = at_cap(HOST, h, id, now, caps[1]) end
  if host_full then return {HOST, 'busy'} end
  local host_now = occupy(HOST, h, id, now, lease_until, host_gate, host_used)
  seen[h] = not host_gate and host_now or nil
  occupy(ENDPOINT, e, id, now, lease_until, ep_gate, ep_used)
  return nil
end

-- Park task `id` under d at L, for `why` (slots held for it, if it was released to them, are
-- freed at both levels).
local function park(L, d, h, e, id, now, why)
  local key = task_key(id)
  redis.call('HINCRBY', key, 'token', 1)
  redis.call('HSET', key, 'parked', why, 'parked_at', now, 'updated_at', now, 'parked_level', L.name)
  redis.call('ZREM', inflight_key(h), id)
  redis.call('ZREM', ep_inflight_key(e), id)
  redis.call('ZADD', L.parked(d), now, id)
  redis.call('ZADD', L.owner, now, d)
  local look = now + BUSY_LOOK_MS
  if why == 'open' then
    local b = redis.call('HMGET', L.breaker(d), 'state', 'open_until')
    if b[1] == 'open' then look = tonumber(b[2]) end
  end
  redis.call('ZADD', L.due, 'LT', look, d)
end

-- Feed d's breaker at L with one attempt of task `id`: up (an answer), or down (`err`).
-- -> the breaker's state after it. lim = {cap, threshold, cooldown_ms, max_cooldown_ms, hold_ms,
-- endpoint cap}
local function feed(L, d, id, now, up, err, lim)
  local dk = L.breaker(d)
  local b = redis.call('HMGET', dk, 'state', 'failures', 'cooldown_ms', 'probe')
  local state, failures = b[1] or 'closed', tonumber(b[2]) or 0
  if up then
    if state ~= 'closed' then
      redis.call('HSET', dk, 'state', 'closed', 'failures', 0, 'updated_at', now)
      redis.call('HDEL', dk, 'cooldown_ms', 'open_until', 'probe')
    elseif failures > 0 then
      redis.call('HSET', dk, 'failures', 0, 'updated_at', now)
    end
    return 'closed'
  end
  failures = redis.call('HINCRBY', dk, 'failures', 1)
  redis.call('HSET', dk, 'last_error', err, 'updated_at', now)
  if state == 'half_open' and b[4] == id then
    open_breaker(L, d, now, math.min((tonumber(b[3]) or lim[3]) * 2, lim[4]))
    return 'open'
  elseif state == 'closed' and failures >= lim[2] then
    open_breaker(L, d, now, lim[3])
    return 'open'
  end
  return state
end

-- FINISH of task `id`'s attempt for host h and endpoint e: free its slots, feed the breakers with
-- `signal` ('up': an answer below 500; 'endpoint': a 5xx or a response timeout, which the host
-- answered; 'host': DNS, refused, connect timeout, TLS, which say nothing of the endpoint; '':
-- nothing), and hand free slots to parked tasks: the endpoint's first, then the host's.
-- `clean` (optional): the hosts this script call has seen closed with no failures, shared by the
-- call's attempts (lua/finish.lua): an answer from such a host changes nothing in its breaker, so
-- the call reads it once, not once per attempt (a host takes many attempts, an endpoint few).
local function settle(h, e, id, now, signal, err, lim, clean)
  redis.call('ZREM', inflight_key(h), id)
  redis.call('ZREM', ep_inflight_key(e), id)
  local host_state, ep_state = nil, nil
  clean = clean or {}
  if signal == 'up' or signal == 'endpoint' then
    if not clean[h] then feed(HOST, h, id, now, true, err, lim) end
    host_state, clean[h] = 'closed', true  -- (an answer closes it and clears its failures)
  end
  if signal == 'host' then
    host_state, clean[h] = feed(HOST, h, id, now, false, err, lim), nil
  end
  -- Whether the endpoint has keys besides its parked set (nothing in flight and no breaker: an
  -- answer changes nothing in it, and unless it has parked tasks it is forgotten below). Releases
  -- below add to its in-flight set only when it has parked tasks.
  local ep_keys = redis.call('EXISTS', ep_inflight_key(e), endpoint_key(e))
  if signal == 'up' then ep_state = ep_keys > 0 and feed(ENDPOINT, e, id, now, true, err, lim) or 'closed' end
  if signal == 'endpoint' then ep_state, ep_keys = feed(ENDPOINT, e, id, now, false, err, lim), 1 end
  local ep_waiting, host_waiting = false, false
  if redis.call('EXISTS', ep_parked_key(e), parked_key(h)) > 0 then  -- (rare: one look for both)
    ep_waiting, host_waiting = redis.call('EXISTS', ep_parked_key(e)) == 1, redis.call('EXISTS', parked_key(h)) == 1
  end
  local caps, hold_until = {lim[1], lim[6]}, now + lim[5]
  if ep_waiting and (ep_state or (is_closed(ENDPOINT, e) and 'closed')) == 'closed' then
    local free = free_slots(ENDPOINT, e, now, caps)
    if free > 0 then release(ENDPOINT, e, math.min(free, RELEASE_MAX), now, hold_until) end
  end
  if host_waiting and (host_state or (is_closed(HOST, h) and 'closed')) == 'closed' then
    local free = free_slots(HOST, h, now, caps)
    if free > 0 then release(HOST, h, math.min(free, RELEASE_MAX), now, hold_until) end
  end
  -- An endpoint left with no key of its own (nothing in flight or parked, no breaker state) is
  -- forgotten at once: a host may carry thousands, one per customer or even per task.
  if not ep_waiting and ep_keys == 0 then redis.call('ZREM', ENDPOINTS, e) end
end

-- RECLAIM of task `id` (its lease expired) for host h and endpoint e: free its slots; a lost
-- probe counts as a failed one, at its level.
local function slot_lost(h, e, id, now, cooldown_ms, max_cooldown_ms)
  for _, step in ipairs({{HOST, h}, {ENDPOINT, e}}) do
    local L, d = step[1], step[2]
    redis.call('ZREM', L.inflight(d), id)
    local b = redis.call('HMGET', L.breaker(d), 'state', 'cooldown_ms', 'probe')
    if b[1] == 'half_open' and b[3] == id then
      redis.call('HINCRBY', L.breaker(d), 'failures', 1)
      redis.call('HSET', L.breaker(d), 'last_error', 'the probe\'s worker was lost')
      open_breaker(L, d, now, math.min((tonumber(b[2]) or cooldown_ms) * 2, max_cooldown_ms))
    end
  end
end

-- A task leaves every set of both its levels (cancel, delete, unclaim).
local function leave_units(h, e, id)
  redis.call('ZREM', parked_key(h), id)
  redis.call('ZREM', inflight_key(h), id)
  redis.call('ZREM', ep_parked_key(e), id)
  redis.call('ZREM', ep_inflight_key(e), id)
end
