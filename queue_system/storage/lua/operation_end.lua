-- operation_end: a running bulk operation ends early: `cancelled` (a client asked) or `failed` (its
-- step raised an error: storage/operations.py). What it did stays done.
-- KEYS[1]  the key prefix
-- ARGV     id, now, operation retention ms, state ('cancelled' | 'failed'), error text or ''
-- Returns  {'ok'} ended | {'over', state} it was not running | {'missing'}
local id, now, keep, final, err = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local key = op_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return {'missing'} end
if state ~= 'running' then return {'over', state} end
redis.call('HSET', key, 'state', final, 'updated_at', now, 'finished_at', now)
if err ~= '' then redis.call('HSET', key, 'error', err) end
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', OPERATIONS_RUNNING, id)
redis.call('PEXPIRE', key, keep)
return {'ok'}
