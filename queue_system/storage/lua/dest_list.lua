-- dest_list: the hosts and the endpoints and their state, most recently active first, and a summary.
-- KEYS[1]  the key prefix
-- ARGV     now, limit (rows per level), max_scan (units of each level the summary counts)
-- Returns  {known, open (open or half-open), parked (total, both levels), host rows,
--          known endpoints, open endpoints, endpoint rows}: each row {d, state, in_flight,
--          failures, parked, open_until|'', cooldown_ms|'', last_error|'', last_active}; the
--          summary covers the `max_scan` most recently active units of each level
local now, limit, max_scan = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, parked = {}, 0
for _, L in ipairs({HOST, ENDPOINT}) do
  local open, rows = 0, {}
  local all = redis.call('ZREVRANGE', L.owner, 0, max_scan - 1, 'WITHSCORES')
  for i = 1, #all, 2 do
    local d = all[i]
    local b = redis.call('HMGET', L.breaker(d), 'state', 'failures', 'open_until', 'cooldown_ms', 'last_error')
    local state = b[1] or 'closed'
    local waiting = redis.call('ZCARD', L.parked(d))
    if state ~= 'closed' then open = open + 1 end
    parked = parked + waiting
    if #rows < limit then
      table.insert(rows, {d, state, redis.call('ZCOUNT', L.inflight(d), '(' .. now, '+inf'),
        tonumber(b[2]) or 0, waiting, b[3] or '', b[4] or '', b[5] or '', all[i + 1]})
    end
  end
  table.insert(out, {redis.call('ZCARD', L.owner), open, rows})
end
return {out[1][1], out[1][2], parked, out[1][3], out[2][1], out[2][2], out[2][3]}
