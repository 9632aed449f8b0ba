-- operation_cancel: a running bulk operation stops (what it did stays done).
-- KEYS[1]  the key prefix
-- ARGV     id, now, operation retention ms
-- Returns  {'ok'} cancelled | {'over', state} it was not running | {'missing'}
local id, now, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local key = op_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return {'missing'} end
if state ~= 'running' then return {'over', state} end
redis.call('HSET', key, 'state', 'cancelled', 'updated_at', now, 'finished_at', now)
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', OPERATIONS_RUNNING, id)
redis.call('PEXPIRE', key, keep)
return {'ok'}
