-- claim: start an attempt for the message (id, token), if the task waits for exactly that one.
-- KEYS[1]  the key prefix
-- ARGV     id, token, now, lease_until, cap (a destination's most slots)
-- Returns  {'ok', {field, value, ...} (the task's hash, as GET reads it), payload JSON}
--          | {'missing'} | {'not_claimable', status} | {'stale'} (another token's message is current)
--          | {'parked', 'open'|'busy'} (its destination cannot take it now: lua/destinations.lua)
-- The task becomes `processing` with attempt + 1 and a lease; `trigger` (what started this
-- attempt) is returned once and then cleared. A task with a destination (`dest`) takes one of
-- its slots; one whose destination is open or at the cap is parked instead, as it is.
local id, token, now, lease_until = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local key = task_key(id)
local found = redis.call('HMGET', key, 'status', 'token', 'created_at', 'attempts', 'trigger', 'dest')
local status, current_token, created_at, attempts, trigger = found[1], found[2], found[3], found[4], found[5]
if not status then return {'missing'} end
if status ~= 'pending' and status ~= 'retrying' then return {'not_claimable', status} end
if current_token ~= token then return {'stale'} end
local dest = found[6]
if dest then
  local why = take_slot(dest, id, now, lease_until, tonumber(ARGV[5]))
  if why then
    park(dest, id, now, why)
    return {'parked', why}
  end
end
redis.call('HSET', key, 'status', 'processing', 'attempts', (tonumber(attempts) or 0) + 1,
  'updated_at', now, 'started_at', now)
local fields = redis.call('HGETALL', key)
if trigger then redis.call('HDEL', key, 'trigger') end
move_status(id, status, 'processing', created_at)
redis.call('ZADD', LEASES, lease_until, id)
return {'ok', fields, redis.call('GET', payload_key(id)) or 'null'}
