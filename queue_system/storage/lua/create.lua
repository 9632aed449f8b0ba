-- create: store a new task and, unless it is scheduled, enqueue its first message.
-- KEYS[1]  the key prefix
-- ARGV     storage/script_args.py CreateArgs (named above): id, task_type, queue, now, status
--          (pending|scheduled), due|'' (scheduled only), fingerprint, payload JSON; then field,
--          value, ... (optional hash fields: retry, timeout_ms, dest, ep)
-- Returns  {1} created | {0, fingerprint} a task with this id exists (its fingerprint)
local extra = {}
for i = N_ARGS + 1, #ARGV do extra[#extra + 1] = ARGV[i] end
local existing = create_task(id, task_type, queue, tonumber(now), status, due, fingerprint, payload, extra)
if existing then return {0, existing} end
return {1}
