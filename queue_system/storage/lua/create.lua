-- create: store a new task and, unless it is scheduled, enqueue its first message.
-- KEYS[1]  the key prefix
-- ARGV     id, type, queue, now, status (pending|scheduled), due_ms|'' (scheduled only),
--          fingerprint, payload JSON, then field, value, ... (optional hash fields: retry, timeout_ms)
-- Returns  {1} created | {0, fingerprint} a task with this id exists (its fingerprint)
local extra = {}
for i = 9, #ARGV do extra[#extra + 1] = ARGV[i] end
local existing = create_task(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7],
  ARGV[8], extra)
if existing then return {0, existing} end
return {1}
