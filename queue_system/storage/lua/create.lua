-- create: store each new task given and, unless it is scheduled, enqueue its first message.
-- KEYS[1]  the key prefix
-- ARGV     per task, its CreateEach (storage/script_args.py): id, task_type, queue, now, status
--          (pending|scheduled), due|'' (scheduled only), fingerprint, payload JSON, n_extra; then
--          its n_extra optional hash fields as field, value, ... (retry, timeout_ms, dest, ep)
-- Returns  per task, in order: {1} created | {0, fingerprint} a task with this id exists (its
--          fingerprint)
-- The API's concurrent submits come as one call (storage/evalsha.py `Batcher`): the script's fixed
-- cost (its helpers, its arguments) is paid once. Each task's step is its own and safe to repeat
-- (a repeat finds the task and answers its fingerprint).
-- (`extra` first: a call's list of arguments keeps all the values of only its last expression)
local function create(extra, id, task_type, queue, now, status, due, fingerprint, payload)
  local existing = create_task(id, task_type, queue, tonumber(now), status, due, fingerprint, payload, extra)
  if existing then return {0, existing} end
  return {1}
end

local replies, i = {}, 1
while i <= #ARGV do
  local n_extra = tonumber(ARGV[i + EACH_ARGS - 1])
  local extra = {unpack(ARGV, i + EACH_ARGS, i + EACH_ARGS + n_extra - 1)}
  replies[#replies + 1] = create(extra, unpack(ARGV, i, i + EACH_ARGS - 2))
  i = i + EACH_ARGS + n_extra
end
return replies
