-- schedule_save: create a schedule, or replace its fields (a PATCH), in one step.
-- KEYS[1]  the key prefix
-- ARGV     schedule id, now, create (1: must not exist | 0: must exist), paused (0|1),
--          next run ms, most schedules (SCHEDULES_MAX: a create beyond it is refused),
--          then field, value, ... (template, body, timing fields)
-- Returns  1 saved | 0 refused (exists on create, missing on update) | -1 refused: full
-- The count is checked after the existence check, so a repeated create of an existing id (a
-- redeploy) still finds its schedule at the limit, and an update never counts.
local sid, now, create, paused, next_run, most = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local key = schedule_key(sid)
local exists = redis.call('EXISTS', key) == 1
if (create == '1') == exists then return 0 end
if create == '1' then
  if redis.call('ZCARD', SCHEDULES) >= most then return -1 end
  redis.call('HSET', key, 'id', sid, 'created_at', now)
  redis.call('ZADD', SCHEDULES, now, sid)
end
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', key, 'paused', paused, 'next_run_at', next_run, 'updated_at', now)
if paused == '1' then redis.call('ZREM', SCHEDULES_DUE, sid) else redis.call('ZADD', SCHEDULES_DUE, next_run, sid) end
return 1
