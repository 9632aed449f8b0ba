-- queue_resume: resume a queue and release its held tasks, a bounded batch per call.
-- KEYS[1]  the key prefix
-- ARGV     queue (one of domain/queues.py QUEUES), now, limit (held tasks released at most),
--          resume ('1': resume the queue first; '0': only release, and only if it is not paused)
-- Returns  {was_paused, released, left (held tasks still waiting)}
-- Idempotent: resuming a running queue only releases what it still holds. The caller repeats
-- with resume '0' while tasks are left (storage/queues.py), so a large backlog never blocks Redis
-- for long; the reconciler's queue_release finishes the job if that caller died.
local queue, now, limit, resume = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local was_paused = redis.call('HEXISTS', PAUSED, queue)
if resume == '1' then
  redis.call('HDEL', PAUSED, queue)
elseif was_paused == 1 then
  return {1, 0, redis.call('ZCARD', held_key(queue))}
end
local done = release_held(queue, limit, now)
return {was_paused, done[1], done[2]}
