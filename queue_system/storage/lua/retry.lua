-- retry: a failed or cancelled task runs again now, as a manual attempt.
-- KEYS[1]  the key prefix
-- ARGV     id, now
-- Returns  {'ok'} | {'missing'} | {'refused', status}
-- Its history is kept; the retry window and retry count start afresh from here.
local id, now = ARGV[1], ARGV[2]
local key = task_key(id)
local found = redis.call('HMGET', key, 'status', 'created_at', 'queue', 'attempts')
local status, created_at, queue, attempts = found[1], found[2], found[3], found[4]
if not status then return {'missing'} end
if status ~= 'failed' and status ~= 'cancelled' then return {'refused', status} end
local token = redis.call('HINCRBY', key, 'token', 1)
redis.call('HSET', key, 'status', 'pending', 'updated_at', now, 'retried_at', now, 'attempt_base', attempts,
  'trigger', 'manual')
redis.call('HDEL', key, 'completed_at', 'next_attempt_at', 'lost')
move_status(id, status, 'pending', created_at)
redis.call('ZREM', EXPIRY, id)
redis.call('PERSIST', key)
redis.call('PERSIST', history_key(id))
redis.call('PERSIST', payload_key(id))
dispatch(id, token, queue, now)
return {'ok'}
