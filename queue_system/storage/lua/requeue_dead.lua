-- requeue_dead: heartbeat this worker process's broker, and give back what dead brokers fetched.
-- KEYS[1]  the key prefix
-- ARGV     broker id (this process's), now, dead_after_ms, judge (1: also judge the others), then
--          the queues a consumer fetches from (delay queues included)
-- Returns  the number of messages put back on their queues
-- A broker whose heartbeat (Dramatiq's consumers and our reconciler both write it) is older than
-- dead_after_ms is dead: each message in its ack sets that still exists is pushed back at the
-- front of its queue (it was fetched first, so it runs first), the ack sets are deleted and the
-- broker forgotten. A message whose task is running elsewhere or finished is skipped by the claim,
-- so a false verdict costs a skipped message, never a second attempt.
local broker, now, dead_after, judge = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', HEARTBEATS, now, broker)
if judge ~= '1' then return 0 end
local dead = redis.call('ZRANGEBYSCORE', HEARTBEATS, '-inf', '(' .. (now - dead_after))
local n = 0
for _, other in ipairs(dead) do
  if other ~= broker then
    for i = 5, #ARGV do
      local queue = ARGV[i]
      local acks = acks_key(other, queue)
      local ids = redis.call('SMEMBERS', acks)
      for _, mid in ipairs(ids) do
        if redis.call('HEXISTS', messages_key(queue), mid) == 1 then
          redis.call('LPUSH', queue_key(queue), mid)
          n = n + 1
        end
      end
      redis.call('DEL', acks)
    end
    redis.call('ZREM', HEARTBEATS, other)
  end
end
return n
