-- fire: one firing of a schedule: its tick's task(s) created and enqueued, its next run moved.
-- KEYS[1]  the key prefix
-- ARGV     schedule id, expected next run ms (the tick planned from), next run ms, now,
--          max last tasks, then the ticks to fire (ms, oldest first; none: only the move)
-- Returns  {fired, already (ticks whose task existed), skipped} | {-1} gone, paused or planned
--          from a stale next run (another worker fired it, or it was changed): nothing done
-- A tick's task id is `{schedule}@{tick}`: `@` is outside the ids a client may give, so no submit
-- can take it, and a firing repeated for a tick creates nothing twice.
-- `overlap: skip` is decided here, in the same step as the move, so two workers cannot both fire
-- past an unfinished task: a firing creates at most one task (the newest tick), and none while the
-- schedule's newest task (the head of its runs list) is still unfinished; every tick not fired is
-- counted in the schedule's `skipped`.
local sid, expected, next_run, now, max_last = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = schedule_key(sid)
local found = redis.call('HMGET', key, 'next_run_at', 'paused', 'template', 'overlap')
if not found[1] or found[1] ~= expected or found[2] == '1' then return {-1} end
local t = cjson.decode(found[3])
local first, skipped = 6, 0
if found[4] == 'skip' and #ARGV >= 6 then
  first = #ARGV
  skipped = #ARGV - 6
  local previous = redis.call('LINDEX', schedule_runs_key(sid), 0)
  local status = previous and redis.call('HGET', task_key(previous), 'status')
  if status and status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
    first, skipped = #ARGV + 1, skipped + 1
  end
end
local fired, already = 0, 0
for i = first, #ARGV do
  local id = sid .. '@' .. ARGV[i]
  local extra = {'schedule', sid, 'tick', ARGV[i]}
  for _, v in ipairs(t.extra) do extra[#extra + 1] = v end
  if create_task(id, t.type, t.queue, now, 'pending', '', t.fingerprint, t.payload, extra) then
    already = already + 1
  else
    fired = fired + 1
    if redis.call('LPUSH', schedule_runs_key(sid), id) > max_last then
      redis.call('LTRIM', schedule_runs_key(sid), 0, max_last - 1)
    end
  end
end
redis.call('HSET', key, 'next_run_at', next_run)
if first <= #ARGV then redis.call('HSET', key, 'last_run_at', now, 'last_tick', ARGV[#ARGV]) end
if skipped > 0 then redis.call('HINCRBY', key, 'skipped', skipped) end
redis.call('ZADD', SCHEDULES_DUE, next_run, sid)
return {fired, already, skipped}
