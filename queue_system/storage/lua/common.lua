-- Functions every script shares. Before this file comes the prelude storage/scripts.py renders
-- from storage/keys.py and storage/dramatiq_wire.py: P (the key prefix, KEYS[1]), the key
-- helpers task_key(id), history_key(id), payload_key(id), status_index(status),
-- type_index(type), queue_key(queue), messages_key(queue), the keys ALL_INDEX, SCHEDULE, LEASES,
-- EXPIRY, message_id(id, token) and ACTORS (queue -> actor name); for destinations dest_key(d),
-- inflight_key(d), parked_key(d), DESTS, DESTS_DUE, endpoint_key(e), ep_inflight_key(e),
-- ep_parked_key(e), ENDPOINTS, ENDPOINTS_DUE (lua/destinations.lua), stats_key(minute),
-- LAYOUT_LOCK (the layout upgrade's lock: lua/relayout.lua), and for queue pause PAUSED,
-- held_key(queue) and MESSAGE_SEPARATOR (lua/queues.lua).

-- An integer as the string Redis takes. A Lua number passed to redis.call is formatted with
-- sprintf('%.14g') on each call, a cost that shows in the hot scripts; '%d' is a fraction of it.
local function int(n)
  return string.format('%d', n)
end

local function move_status(id, old, new, created_at)
  if old then redis.call('ZREM', status_index(old), id) end
  redis.call('ZADD', status_index(new), created_at, id)
end

-- Enqueue the message of attempt `token` the way Dramatiq's own enqueue does (HSET + RPUSH); with
-- `front`, at the front of the queue (LPUSH): for a task that has waited its turn already (a parked
-- task its destination can take again).
-- The JSON is spelled here, only the strings from outside escaped by cjson: encoding the whole
-- table cost a submit ~1.3 us more of Redis's time. (queue and its actor are our own names.)
local function dispatch(id, token, queue, now, front)
  local mid = message_id(id, token)
  local quoted = cjson.encode(mid)
  local message = '{"queue_name":"' .. queue .. '","actor_name":"' .. ACTORS[queue] .. '","args":['
    .. cjson.encode(id) .. ',' .. int(token) .. '],"kwargs":{},"options":{"redis_message_id":' .. quoted
    .. '},"message_id":' .. quoted .. ',"message_timestamp":' .. int(now) .. '}'
  redis.call('HSET', messages_key(queue), mid, message)
  redis.call(front and 'LPUSH' or 'RPUSH', queue_key(queue), mid)
end

-- Store a new task and, unless it is scheduled, enqueue its first message (lua/create.lua, and a
-- schedule's firing: lua/fire.lua). `extra`: a flat list of optional hash fields, field, value, ...
-- -> nil when created, else the fingerprint of the task that holds the id.
local function create_task(id, task_type, queue, now, status, due, fingerprint, payload, extra)
  local key = task_key(id)
  if redis.call('EXISTS', key) == 1 then
    return redis.call('HGET', key, 'fingerprint') or ''
  end
  -- One HSET of every field (one per optional field cost the submit a call each).
  local fields = {'id', id, 'type', task_type, 'queue', queue, 'status', status, 'attempts', 0,
    'created_at', now, 'updated_at', now, 'token', 1, 'fingerprint', fingerprint}
  for i = 1, #extra do fields[#fields + 1] = extra[i] end
  if status == 'scheduled' then
    fields[#fields + 1] = 'next_attempt_at'
    fields[#fields + 1] = due
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('SET', payload_key(id), payload)
  redis.call('ZADD', ALL_INDEX, now, id)
  redis.call('ZADD', type_index(task_type), now, id)
  move_status(id, false, status, now)
  if status == 'scheduled' then
    redis.call('ZADD', SCHEDULE, due, id)
  else
    dispatch(id, 1, queue, now)
  end
  return nil
end

-- A finished task waits in EXPIRY, its owner, for the sweeper to purge it after `retention` (every
-- worker's reconciler sweeps). No TTL on its keys: setting three on every finish was a tenth of
-- the finish script's Redis time, and a task never outlives its EXPIRY entry (lua/sweep.lua).
local function finish_final(id, now, retention)
  redis.call('ZADD', EXPIRY, int(now + retention), id)
end

local function purge(id)
  local found = redis.call('HMGET', task_key(id), 'type', 'status', 'dest', 'ep', 'held', 'queue')
  local task_type, status, dest = found[1], found[2], found[3]
  if found[5] and found[6] then redis.call('ZREM', held_key(found[6]), id) end  -- held: lua/queues.lua
  if dest then  -- its host's sets and its endpoint's (a task stored before endpoints: its host)
    local e = dest .. (found[4] or '')
    redis.call('ZREM', parked_key(dest), id)
    redis.call('ZREM', inflight_key(dest), id)
    redis.call('ZREM', ep_parked_key(e), id)
    redis.call('ZREM', ep_inflight_key(e), id)
  end
  if task_type then redis.call('ZREM', type_index(task_type), id) end
  if status then redis.call('ZREM', status_index(status), id) end
  redis.call('ZREM', ALL_INDEX, id)
  redis.call('ZREM', SCHEDULE, id)
  redis.call('ZREM', LEASES, id)
  redis.call('ZREM', EXPIRY, id)
  return redis.call('DEL', task_key(id), history_key(id), payload_key(id))
end

local function push_history(id, entry, max_history)
  if redis.call('RPUSH', history_key(id), entry) > max_history then
    redis.call('LTRIM', history_key(id), -max_history, -1)
  end
end

-- Dramatiq's ack of the message (id, token) that the consumer of `queue` of broker `consumer`
-- fetched (its SREM + HDEL, as in its dispatch.lua), unless `consumer` is '' (nothing to ack):
-- -> 1 if this call acknowledged it. (Dramatiq's ack also refreshes the broker's heartbeat; the
-- reconciler's heartbeat, every second, keeps it here: lua/requeue_dead.lua.)
local function ack_message(consumer, queue, id, token)
  if consumer == '' then return 0 end
  local mid = message_id(id, token)
  if redis.call('SREM', acks_key(consumer, queue), mid) == 1 then
    redis.call('HDEL', messages_key(queue), mid)
    return 1
  end
  return 0
end
