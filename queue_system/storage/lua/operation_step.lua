-- operation_step: one bounded step of a running bulk operation, all of it or nothing: walk its
-- index from the cursor (oldest first; ties by id), act on each task that matches (lua/actions.lua,
-- as the single-task scripts do), and move the cursor and the counters with the actions.
-- KEYS[1]  the key prefix
-- ARGV     id, runner, now, lease ms, max actions, max examined, task retention ms,
--          operation retention ms, burst ms
-- Returns  {'ran', acted, examined, finished 0|1} | {'busy'} another runner's lease is live |
--          {'wait', ms} no token yet (`rate`) | {'over', state} not running | {'missing'}
-- The lease makes one runner at a time (a dead one's expires); the step itself needs none to be
-- safe: the cursor only moves forward with the actions it covers, so a task is acted on once,
-- whoever runs the next step. Tokens (`rate` per second) accrue from `paced_at`, at most `burst`.
local id, runner, now, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_actions, max_examined = tonumber(ARGV[5]), tonumber(ARGV[6])
local retention, keep, burst = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local key = op_key(id)
local f = redis.call('HMGET', key, 'state', 'owner', 'lease_until', 'rate', 'paced_at', 'index', 'high',
  'cursor_score', 'cursor_id', 'action', 'match', 'endpoint')
local state, owner, lease_until = f[1], f[2], tonumber(f[3] or '0')
if not state then return {'missing'} end
if state ~= 'running' then return {'over', state} end
if owner and owner ~= runner and lease_until > now then return {'busy'} end
redis.call('HSET', key, 'owner', runner, 'lease_until', int(now + lease))

local rate, paced = tonumber(f[4]), tonumber(f[5])
if paced < now - burst then paced = now - burst end
local allowed = math.floor((now - paced) * rate / 1000)
if allowed < 1 then return {'wait', math.ceil(1000 / rate - (now - paced))} end
if allowed > max_actions then allowed = max_actions end

local index, high, cs, cid, action = f[6], tonumber(f[7]), f[8], f[9], f[10]
local wanted, endpoint = {}, f[12]
local names = {}
for name, values in pairs(cjson.decode(f[11])) do
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  wanted[#wanted + 1] = set
  names[#names + 1] = name
end
if endpoint then names[#names + 1] = 'dest'; names[#names + 1] = 'ep' end
local function matches(tid)
  if #names == 0 then return true end
  local v = redis.call('HMGET', task_key(tid), unpack(names))
  for i, set in ipairs(wanted) do
    if not v[i] or not set[v[i]] then return false end
  end
  if endpoint then
    local d = v[#wanted + 1]
    if not d or endpoint_of(d, v[#wanted + 2]) ~= endpoint then return false end
  end
  return true
end

-- The rank of the first entry after (score, member) = (cs, cid): ties sit in member order, so a
-- binary search over them finds it, whether or not cid is still in the index.
local function first_after(score, member)
  local lo = redis.call('ZCOUNT', index, '-inf', '(' .. score)
  local hi = lo + redis.call('ZCOUNT', index, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZRANGE', index, mid, mid)[1] <= member then lo = mid + 1 else hi = mid end
  end
  return lo
end

local n = {done = 0, skipped = 0, failed = 0}
local acted, examined, finished = 0, 0, false
while acted < allowed and examined < max_examined and not finished do
  local start = first_after(cs, cid)  -- anew each batch: the actions may take entries out
  local batch = redis.call('ZRANGE', index, start, start + 99, 'WITHSCORES')
  if #batch == 0 then finished = true end
  for i = 1, #batch, 2 do
    local tid, sc = batch[i], batch[i + 1]
    if tonumber(sc) > high then finished = true; break end
    examined = examined + 1
    cs, cid = sc, tid
    if matches(tid) then
      local out
      if action == 'retry' then
        out = retry_task(tid, now)
      elseif action == 'cancel' then
        out = cancel_task(tid, now, retention)
      else
        cancel_task(tid, now, retention)  -- as a single delete: never runs again, then removed
        out = {purge(tid) > 0 and 'ok' or 'missing'}
      end
      local kind = out[1] == 'ok' and 'done' or (out[1] == 'refused' and 'skipped' or 'failed')
      n[kind] = n[kind] + 1
      acted = acted + 1
      if acted >= allowed then break end
    end
    if examined >= max_examined then break end
  end
end

redis.call('HSET', key, 'cursor_score', cs, 'cursor_id', cid, 'updated_at', int(now),
  'paced_at', string.format('%.3f', paced + acted * 1000 / rate))
redis.call('HINCRBY', key, 'examined', examined)
redis.call('HINCRBY', key, 'matched', acted)
for kind, count in pairs(n) do
  if count > 0 then redis.call('HINCRBY', key, kind, count) end
end
if finished then
  redis.call('HSET', key, 'state', 'done', 'finished_at', int(now))
  redis.call('HDEL', key, 'owner', 'lease_until')
  redis.call('ZREM', OPERATIONS_RUNNING, id)
  redis.call('PEXPIRE', key, keep)
end
return {'ran', acted, examined, finished and 1 or 0}
