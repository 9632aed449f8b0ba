-- wake: the reconciler's step for hosts and endpoints with parked tasks (lua/destinations.lua).
-- KEYS[1]  the key prefix
-- ARGV     now, limit (units looked at, per level), host cap, hold_ms, host idle_ms,
--          endpoint cap, endpoint idle_ms
-- Returns  {dispatched, probes}: parked tasks dispatched again, of which probes
-- For each host, then each endpoint, due in its level's due set: an open one whose cool-down is
-- over (or a half-open one whose probe was lost) gets its oldest parked task as the probe; a
-- closed one with free slots gets up to that many of its oldest parked tasks (an endpoint: within
-- its host's free slots, and only while its host is closed). Then it forgets a few units idle
-- for their level's idle time with nothing parked or in flight (their breaker state too).
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local caps, hold_until = {tonumber(ARGV[3]), tonumber(ARGV[6])}, now + tonumber(ARGV[4])
local dispatched, probes = 0, 0
for _, L in ipairs({HOST, ENDPOINT}) do
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', L.due, '-inf', now, 'LIMIT', 0, limit)) do
    local look = nil
    if redis.call('EXISTS', L.parked(d)) == 1 then
      local b = redis.call('HMGET', L.breaker(d), 'state', 'open_until', 'probe')
      local state = b[1] or 'closed'
      if state == 'open' and tonumber(b[2]) > now then
        look = tonumber(b[2])
      elseif state == 'half_open' and probe_live(L, d, b[3], now) then
        look = now + 1000
      elseif state ~= 'closed' then  -- (a probe, too, needs a free slot)
        if free_slots(L, d, now, caps) > 0 and send_probe(L, d, now, hold_until) then
          dispatched, probes = dispatched + 1, probes + 1
        end
        if redis.call('EXISTS', L.parked(d)) == 1 then look = now + 1000 end
      else
        local free = free_slots(L, d, now, caps)
        if free > 0 then dispatched = dispatched + release(L, d, math.min(free, RELEASE_MAX), now, hold_until) end
        if redis.call('EXISTS', L.parked(d)) == 1 then look = now + BUSY_LOOK_MS end
      end
    end
    if look then redis.call('ZADD', L.due, look, d) else redis.call('ZREM', L.due, d) end
  end
end
local idle = {[HOST] = {tonumber(ARGV[5]), 10}, [ENDPOINT] = {tonumber(ARGV[7]), 100}}
for _, L in ipairs({HOST, ENDPOINT}) do
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', L.owner, '-inf', now - idle[L][1], 'LIMIT', 0, idle[L][2])) do
    redis.call('ZREMRANGEBYSCORE', L.inflight(d), '-inf', '(' .. now)
    if redis.call('EXISTS', L.parked(d), L.inflight(d)) == 0 then
      redis.call('DEL', L.breaker(d))
      redis.call('ZREM', L.owner, d)
      redis.call('ZREM', L.due, d)
    else
      redis.call('ZADD', L.owner, now, d)
    end
  end
end
return {dispatched, probes}
