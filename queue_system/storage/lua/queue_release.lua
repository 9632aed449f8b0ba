-- queue_release: the reconciler's backstop for queues resumed with tasks still held (the process
-- that resumed one died before it released them all).
-- KEYS[1]  the key prefix
-- ARGV     now, limit (per queue), then the queues (domain/queues.py QUEUES)
-- Returns  the number of held tasks dispatched again
-- A paused queue keeps what it holds; a running one costs two lookups when it holds nothing.
local now, limit, n = ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local queue = ARGV[i]
  if redis.call('HEXISTS', PAUSED, queue) == 0 and redis.call('EXISTS', held_key(queue)) == 1 then
    n = n + release_held(queue, limit, now)[1]
  end
end
return n
