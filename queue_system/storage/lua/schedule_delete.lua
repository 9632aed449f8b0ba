-- schedule_delete: remove a schedule and its keys in one step (a firing after it finds nothing).
-- KEYS[1]  the key prefix
-- ARGV     schedule id
-- Returns  1 deleted | 0 there was none
local sid = ARGV[1]
redis.call('ZREM', SCHEDULES, sid)
redis.call('ZREM', SCHEDULES_DUE, sid)
return redis.call('DEL', schedule_key(sid), schedule_runs_key(sid)) > 0 and 1 or 0
