-- create: store a new task and, unless it is scheduled, enqueue its first message.
-- KEYS[1]  the key prefix
-- ARGV     id, type, queue, now, status (pending|scheduled), due_ms|'' (scheduled only),
--          fingerprint, payload JSON, then field, value, ... (optional hash fields: retry, timeout_ms)
-- Returns  {1} created | {0, fingerprint} a task with this id exists (its fingerprint)
local id, task_type, queue, now, status = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local due, fingerprint, payload = ARGV[6], ARGV[7], ARGV[8]
local key = task_key(id)
if redis.call('EXISTS', key) == 1 then
  return {0, redis.call('HGET', key, 'fingerprint') or ''}
end
redis.call('HSET', key, 'id', id, 'type', task_type, 'queue', queue, 'status', status, 'attempts', 0,
  'created_at', now, 'updated_at', now, 'token', 1, 'fingerprint', fingerprint)
for i = 9, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('SET', payload_key(id), payload)
redis.call('ZADD', ALL_INDEX, now, id)
redis.call('ZADD', type_index(task_type), now, id)
move_status(id, false, status, now)
if status == 'scheduled' then
  redis.call('HSET', key, 'next_attempt_at', due)
  redis.call('ZADD', SCHEDULE, due, id)
else
  dispatch(id, 1, queue, now)
end
return {1}
