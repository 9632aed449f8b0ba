-- queue_stats: each queue's state, for GET /api/v1/queues (reads only).
-- KEYS[1]  the key prefix
-- ARGV     now, scan (messages at the head of a queue looked at for the oldest), then the queues
-- Returns  per queue {queue, paused_at ms or '', queued (messages in Dramatiq's list), held,
--          oldest created_at ms of a waiting task or ''}
-- The oldest: the first held task (held by created_at), or the oldest of the first `scan`
-- messages of the list (a retry dispatched late may be older than the head): a bounded look.
local scan, out = tonumber(ARGV[2]), {}
for i = 3, #ARGV do
  local queue = ARGV[i]
  local oldest = nil
  local first = redis.call('ZRANGE', held_key(queue), 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  for _, mid in ipairs(redis.call('LRANGE', queue_key(queue), 0, scan - 1)) do
    local id = string.match(mid, '^(.*)' .. MESSAGE_SEPARATOR .. '%d+$')
    local found = id and redis.call('HMGET', task_key(id), 'status', 'created_at')
    if found and (found[1] == 'pending' or found[1] == 'retrying') then
      local created = tonumber(found[2])
      if created and (not oldest or created < oldest) then oldest = created end
    end
  end
  out[#out + 1] = {queue, redis.call('HGET', PAUSED, queue) or '', redis.call('LLEN', queue_key(queue)),
    redis.call('ZCARD', held_key(queue)), oldest and string.format('%d', oldest) or ''}
end
return out
