-- queue_pause: pause a queue (lua/queues.lua): from now on its claims hold their tasks.
-- KEYS[1]  the key prefix
-- ARGV     queue (one of domain/queues.py QUEUES: the caller checks), now
-- Returns  {newly (1: it was running), paused_at (ms: the first pause's, kept by a repeat)}
-- Idempotent: pausing a paused queue changes nothing. Attempts under way finish as usual.
local queue, now = ARGV[1], ARGV[2]
local newly = redis.call('HSETNX', PAUSED, queue, now)
return {newly, tonumber(redis.call('HGET', PAUSED, queue))}
