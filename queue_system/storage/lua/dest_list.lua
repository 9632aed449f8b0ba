-- dest_list: the destinations and their state, most recently active first, and a summary.
-- KEYS[1]  the key prefix
-- ARGV     now, limit (rows), max_scan (destinations the summary counts)
-- Returns  {known, open (open or half-open), parked (total), rows}: each row {d, state,
--          in_flight, failures, parked, open_until|'', cooldown_ms|'', last_error|'',
--          last_active}; the summary covers the `max_scan` most recently active destinations
local now, limit, max_scan = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local known = redis.call('ZCARD', DESTS)
local open, parked, rows = 0, 0, {}
local all = redis.call('ZREVRANGE', DESTS, 0, max_scan - 1, 'WITHSCORES')
for i = 1, #all, 2 do
  local d = all[i]
  local b = redis.call('HMGET', dest_key(d), 'state', 'failures', 'open_until', 'cooldown_ms', 'last_error')
  local state = b[1] or 'closed'
  local waiting = redis.call('ZCARD', parked_key(d))
  if state ~= 'closed' then open = open + 1 end
  parked = parked + waiting
  if #rows < limit then
    table.insert(rows, {d, state, redis.call('ZCOUNT', inflight_key(d), '(' .. now, '+inf'),
      tonumber(b[2]) or 0, waiting, b[3] or '', b[4] or '', b[5] or '', all[i + 1]})
  end
end
return {known, open, parked, rows}
