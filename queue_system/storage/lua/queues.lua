-- queues: queue pause (domain/queues.py, storage/queues.py), shared by claim.lua and the queue scripts.
-- PAUSED (hash: queue -> paused-at ms) names the paused queues; held_key(queue) (zset: id ->
-- created_at ms) holds the tasks whose claim a pause refused. A held task keeps its status, its
-- attempt count and its created_at (its retry window still counts from creation, as a parked
-- task's does), has `held` = held-at ms, no lease and no message: holding moves its token on, so
-- no copy of its old message can run it, and it costs nothing while it waits. The reconciler's
-- redispatch leaves it alone (it is not lost); a release dispatches it again with a new token.

-- Hold task `id` of `queue` (a claim refused it: its queue is paused). A parked task released to
-- its destination's slots gives back the slots held for it (lua/destinations.lua `unpark`).
local function hold(id, queue, created_at, dest, ep, now)
  local key = task_key(id)
  redis.call('HINCRBY', key, 'token', 1)
  redis.call('HSET', key, 'held', now, 'updated_at', now)
  redis.call('ZADD', held_key(queue), created_at, id)
  if dest then
    redis.call('ZREM', inflight_key(dest), id)
    redis.call('ZREM', ep_inflight_key(endpoint_of(dest, ep)), id)
  end
end

-- Dispatch up to `n` of `queue`'s held tasks again, the oldest first, each at the back of the
-- queue (batches in a row keep their order). A cancelled or deleted one is only dropped.
-- -> {released, left}
local function release_held(queue, n, now)
  local set = held_key(queue)
  local ids = redis.call('ZRANGE', set, 0, n - 1)
  local released = 0
  for _, id in ipairs(ids) do
    redis.call('ZREM', set, id)
    local key = task_key(id)
    local found = redis.call('HMGET', key, 'status', 'held')
    if found[2] and (found[1] == 'pending' or found[1] == 'retrying') then
      local token = redis.call('HINCRBY', key, 'token', 1)
      redis.call('HDEL', key, 'held')
      redis.call('HSET', key, 'updated_at', now)
      dispatch(id, token, queue, now)
      released = released + 1
    end
  end
  return {released, redis.call('ZCARD', set)}
end
