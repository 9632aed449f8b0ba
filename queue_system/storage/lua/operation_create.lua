-- operation_create: start a bulk operation (storage/operations.py): its record, running.
-- KEYS[1]  the key prefix
-- ARGV     id, now, max running, operation retention ms, index key, low score, high score,
--          then field, value, ... (action, filter, match, endpoint, rate)
-- Returns  {'ok', total} | {'exists'} | {'full', running}
-- `total` counts the index's entries in [low, high] now: the walk's length, an upper bound of what
-- matches. Also drops up to a bounded number of {p}:ops entries whose record expired.
local id, now, max_running, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local index, low, high = ARGV[5], ARGV[6], ARGV[7]
local key = op_key(id)
if redis.call('EXISTS', key) == 1 then return {'exists'} end
local running = redis.call('ZCARD', OPERATIONS_RUNNING)
if running >= max_running then return {'full', running} end
-- Old entries past retention: a record gone is an entry to drop (running ones stay: they are few).
local old = redis.call('ZRANGEBYSCORE', OPERATIONS, '-inf', now - keep, 'LIMIT', 0, max_running + 20)
for _, oid in ipairs(old) do
  if redis.call('EXISTS', op_key(oid)) == 0 then redis.call('ZREM', OPERATIONS, oid) end
end
local total = redis.call('ZCOUNT', index, low, high)
redis.call('HSET', key, 'id', id, 'state', 'running', 'created_at', now, 'updated_at', now,
  'index', index, 'low', low, 'high', high, 'cursor_score', low, 'cursor_id', '', 'paced_at', now,
  'total', total, 'examined', 0, 'matched', 0, 'done', 0, 'failed', 0, 'skipped', 0)
for i = 8, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', OPERATIONS, now, id)
redis.call('ZADD', OPERATIONS_RUNNING, now, id)
return {'ok', total}
