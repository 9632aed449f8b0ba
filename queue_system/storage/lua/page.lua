-- page: one page of a listing, newest first, ties by id descending.
-- KEYS[1]  the key prefix
-- ARGV     index key, filters (JSON: {field: [allowed values]}), min score, max score,
--          cursor score|'', cursor id, limit, max scan
-- Returns  {{id, score, ...}, more (0|1), last scanned id, last scanned score}
-- `more` with fewer than `limit` rows means the scan bound was hit: resume from the last
-- scanned position.
local key, filters, low, high = ARGV[1], cjson.decode(ARGV[2]), ARGV[3], ARGV[4]
local cs, cid, limit, max_scan = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local wanted = {}
for name, values in pairs(filters) do
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  wanted[name] = set
end
local function matches(id)
  for name, set in pairs(wanted) do
    local v = redis.call('HGET', task_key(id), name)
    if not v or not set[v] then return false end
  end
  return true
end
local out, scanned, offset = {}, 0, 0
local top = high
local csn = tonumber(cs)
if csn ~= nil and (high == '+inf' or csn < tonumber(high)) then top = cs end
local last_id, last_sc = '', ''
while scanned < max_scan do
  local batch = redis.call('ZREVRANGEBYSCORE', key, top, low, 'WITHSCORES', 'LIMIT', offset, 200)
  if #batch == 0 then return {out, 0, last_id, last_sc} end
  for i = 1, #batch, 2 do
    local id, sc = batch[i], tonumber(batch[i + 1])
    if csn == nil or sc < csn or (sc == csn and id < cid) then
      if matches(id) then
        if #out >= limit * 2 then return {out, 1, last_id, last_sc} end
        table.insert(out, id)
        table.insert(out, batch[i + 1])
      end
    end
    scanned = scanned + 1
    last_id, last_sc = id, batch[i + 1]
  end
  offset = offset + 200
end
return {out, 1, last_id, last_sc}
