-- wake: the reconciler's step for destinations with parked tasks (lua/destinations.lua).
-- KEYS[1]  the key prefix
-- ARGV     now, limit (destinations looked at), cap, hold_ms, idle_ms
-- Returns  {dispatched, probes}: parked tasks dispatched again, of which probes
-- For each destination due in DESTS_DUE: an open one whose cool-down is over (or a half-open one
-- whose probe was lost) gets its oldest parked task as the probe; a closed one with free slots
-- gets up to that many of its oldest parked tasks. Then it forgets a few destinations idle for
-- `idle_ms` with nothing parked or in flight (their breaker state too).
local now, limit, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hold_until, idle = now + tonumber(ARGV[4]), tonumber(ARGV[5])
local dispatched, probes = 0, 0
for _, d in ipairs(redis.call('ZRANGEBYSCORE', DESTS_DUE, '-inf', now, 'LIMIT', 0, limit)) do
  local look = nil
  if redis.call('EXISTS', parked_key(d)) == 1 then
    local b = redis.call('HMGET', dest_key(d), 'state', 'open_until', 'probe')
    local state = b[1] or 'closed'
    if state == 'open' and tonumber(b[2]) > now then
      look = tonumber(b[2])
    elseif state == 'half_open' and probe_live(d, b[3], now) then
      look = now + 1000
    elseif state ~= 'closed' then
      if send_probe(d, now, hold_until) then
        dispatched, probes = dispatched + 1, probes + 1
        look = now + 1000
      end
    else
      local free = cap - slots_used(d, now, cap)
      if free > 0 then dispatched = dispatched + release(d, math.min(free, RELEASE_MAX), now, hold_until) end
      if redis.call('EXISTS', parked_key(d)) == 1 then look = now + BUSY_LOOK_MS end
    end
  end
  if look then redis.call('ZADD', DESTS_DUE, look, d) else redis.call('ZREM', DESTS_DUE, d) end
end
for _, d in ipairs(redis.call('ZRANGEBYSCORE', DESTS, '-inf', now - idle, 'LIMIT', 0, 10)) do
  redis.call('ZREMRANGEBYSCORE', inflight_key(d), '-inf', '(' .. now)
  if redis.call('EXISTS', parked_key(d), inflight_key(d)) == 0 then
    redis.call('DEL', dest_key(d))
    redis.call('ZREM', DESTS, d)
    redis.call('ZREM', DESTS_DUE, d)
  else
    redis.call('ZADD', DESTS, now, d)
  end
end
return {dispatched, probes}
