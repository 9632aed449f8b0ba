-- sweep: purge the finished tasks whose retention has passed.
-- KEYS[1]  the key prefix
-- ARGV     now, limit
-- Returns  the number of tasks purged
local ids = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do purge(id) end
return #ids
