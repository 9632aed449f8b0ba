-- cancel: a waiting task (pending, scheduled, retrying) will not run; its message is skipped.
-- A parked task leaves its host's or endpoint's parked set (and a released one the slots held for it);
-- a held one (its queue is paused) leaves its queue's held set.
-- KEYS[1]  the key prefix
-- ARGV     id, now, retention_ms
-- Returns  {'ok'} | {'missing'} | {'refused', status}
local id, now, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local key = task_key(id)
local found = redis.call('HMGET', key, 'status', 'created_at', 'dest', 'ep', 'held', 'queue')
local status, created_at, dest = found[1], found[2], found[3]
if not status then return {'missing'} end
if status ~= 'pending' and status ~= 'scheduled' and status ~= 'retrying' then return {'refused', status} end
redis.call('HSET', key, 'status', 'cancelled', 'updated_at', now, 'completed_at', now)
redis.call('HDEL', key, 'next_attempt_at', 'parked', 'parked_at', 'parked_level', 'held')
if dest then leave_units(dest, endpoint_of(dest, found[4]), id) end
if found[5] then redis.call('ZREM', held_key(found[6]), id) end
move_status(id, status, 'cancelled', created_at)
redis.call('ZREM', SCHEDULE, id)
finish_final(id, now, retention)
return {'ok'}
