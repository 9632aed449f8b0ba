-- unclaim: give back a claimed task whose attempt never started (the worker is stopping, or its
-- delivery loop had no room): the claim is undone and the task waits for a new message.
-- KEYS[1]  the key prefix
-- ARGV     storage/script_args.py UnclaimArgs (named above): id, token (the claimed message's),
--          now, trigger (as the claim returned it), then the message to acknowledge: consumer
--          ('': none) and queue, as finish takes them
-- Returns  {undone, acked}: undone 1 = the task was `processing` with this token and is now back
--          to pending/retrying with its attempt count restored, no lease, and a new token's
--          message dispatched; acked 1 = the old message was acknowledged here
-- The status it goes back to follows from the counts: a pending task has made no attempt since
-- its creation or its manual retry (attempts == attempt_base), a retrying one has.
local acked = ack_message(consumer, queue, id, token)
local key = task_key(id)
local found = redis.call('HMGET', key, 'status', 'token', 'created_at', 'attempts', 'attempt_base', 'queue',
  'dest', 'ep')
local status, current_token, created_at, attempts = found[1], found[2], found[3], tonumber(found[4]) or 1
local base, task_queue, dest = tonumber(found[5]) or 0, found[6], found[7]
if status ~= 'processing' or current_token ~= token then return {0, acked} end
attempts = math.max(attempts - 1, 0)
local back = 'retrying'
if attempts <= base then back = 'pending' end
local new_token = redis.call('HINCRBY', key, 'token', 1)
redis.call('HSET', key, 'status', back, 'attempts', attempts, 'updated_at', now)
redis.call('HDEL', key, 'started_at')
if trigger ~= '' and trigger ~= 'auto' then redis.call('HSET', key, 'trigger', trigger) end
move_status(id, 'processing', back, created_at)
redis.call('ZREM', LEASES, id)
-- Its destination slots go too (the claim took one at each level): the new message claims again.
if dest then leave_units(dest, endpoint_of(dest, found[8]), id) end
dispatch(id, new_token, task_queue, now)
return {1, acked}
