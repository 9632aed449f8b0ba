-- The manual changes of one task, shared by the single-task scripts (retry.lua, cancel.lua) and a
-- bulk operation's step (operation_step.lua), so both change a task exactly the same way.
-- Each returns {'ok'} | {'missing'} | {'refused', status}.

-- A failed or cancelled task runs again now, as a manual attempt. Its history is kept; the retry
-- window and retry count start afresh from here.
local function retry_task(id, now)
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
end

-- A waiting task (pending, scheduled, retrying) will not run; its message is skipped. A parked
-- task leaves its host's or endpoint's parked set (and a released one the slots held for it); a
-- held one (its queue is paused) leaves its queue's held set.
local function cancel_task(id, now, retention)
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
end
