-- claim: start an attempt for each message (id, token) given, if its task waits for exactly that one.
-- KEYS[1]  the key prefix
-- ARGV     storage/script_args.py ClaimArgs (named above): host_cap, endpoint_cap (their most
--          slots); then, per message, its ClaimEach: id, token, now, lease_until
-- Returns  a reply per message, in order, each {'ok', {value, ...} (the task's CLAIMED_FIELDS as they now are, in the order of
--          storage/codec.py; false = absent), payload JSON}
--          | {'missing'} | {'not_claimable', status} | {'stale'} (another token's message is current)
--          | {'paused'} (its queue is paused: the task is held, lua/queues.lua)
--          | {'parked', 'open'|'busy', 'host'|'endpoint'} (that level of its destination cannot
--          take it now: lua/destinations.lua)
-- The task becomes `processing` with attempt + 1 and a lease; `trigger` (what started this
-- attempt) is returned once and then cleared. A task with a destination (`dest`, and `ep`)
-- takes a slot of its host and one of its endpoint; one whose host or endpoint is open or at its
-- cap is parked instead, as it is, under that level.
-- The fields are read once, with one HMGET, and returned as changed here: reading the hash again
-- (HGETALL) cost the claim a quarter of its Redis time.
-- now and lease_until stay strings, as Redis takes them (lua/common.lua `int`).
-- The worker's threads claim in bursts, and their concurrent claims come as one call
-- (storage/combiner.py): the script's fixed cost (its helpers, its arguments) is paid once, and
-- so are the look-ups its claims share (below).
local caps = {tonumber(host_cap), tonumber(endpoint_cap)}
-- What this call's claims share (each costs Redis once per call, not once per claim): whether any
-- queue is paused at all (mostly none: then no claim looks its queue up), and the hosts found
-- closed with their slots in use (lua/destinations.lua `take_slot`).
local any_paused, seen = redis.call('EXISTS', PAUSED) == 1, {}

local function claim(id, token, now, lease_until)
  local key = task_key(id)
  local task = read_claimed(key)
  local status, created_at, trigger = task[CLAIMED_STATUS], task[CLAIMED_CREATED_AT], task[CLAIMED_TRIGGER]
  if not status then return {'missing'} end
  if status ~= 'pending' and status ~= 'retrying' then return {'not_claimable', status} end
  if task[CLAIMED_TOKEN] ~= token then return {'stale'} end
  local dest = task[CLAIMED_DEST]
  -- [queues] A paused queue's task is held, not claimed (lua/queues.lua); resume releases it.
  if any_paused and redis.call('HEXISTS', PAUSED, task[CLAIMED_QUEUE]) == 1 then
    hold(id, task[CLAIMED_QUEUE], created_at, dest, task[CLAIMED_EP], now)
    if dest then seen[dest] = nil end  -- (it gave back the slots held for it)
    return {'paused'}
  end
  if dest then
    local e = endpoint_of(dest, task[CLAIMED_EP])
    local wait = take_slot(dest, e, id, tonumber(now), tonumber(lease_until), caps, seen)
    if wait then
      seen[dest] = nil  -- (parking gives back the slots held for it)
      park(wait[1], wait[1] == HOST and dest or e, dest, e, id, tonumber(now), wait[2])
      return {'parked', wait[2], wait[1].name}
    end
  end
  local attempts = int((tonumber(task[CLAIMED_ATTEMPTS]) or 0) + 1)
  -- `updated_at` is when the attempt started: nothing else writes a processing task's record until
  -- its attempt ends (finish, reclaim, unclaim), so lua/reclaim.lua reads it there.
  redis.call('HSET', key, 'status', 'processing', 'attempts', attempts, 'updated_at', now)
  task[CLAIMED_STATUS], task[CLAIMED_ATTEMPTS], task[CLAIMED_UPDATED_AT] = 'processing', attempts, now
  if trigger then redis.call('HDEL', key, 'trigger') end
  move_status(id, status, 'processing', created_at)
  redis.call('ZADD', LEASES, lease_until, id)
  return {'ok', task, redis.call('GET', payload_key(id)) or 'null'}
end

local replies = {}
for i = N_ARGS + 1, #ARGV, EACH_ARGS do
  replies[#replies + 1] = claim(unpack(ARGV, i, i + EACH_ARGS - 1))
end
return replies
