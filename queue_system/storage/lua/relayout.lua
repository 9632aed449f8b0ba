-- relayout: move a batch of records' keys from their layout 1 names to layout 2's (storage/layout.py).
-- KEYS[1]  the key prefix
-- ARGV     the lock token (the value of LAYOUT_LOCK this process set), then old name, new name,
--          type, old name, new name, type, ...: every key of a record in the same call
-- Returns  the number of keys moved | -1: the lock is not this process's any more (nothing moved)
-- A key moves only if it has the type its old name implies: in layout 1 `{p}:task:a:payload` is
-- id `a`'s payload if it is a string, and id `a:payload`'s record if it is a hash (which stays).
-- RENAME keeps the expiry.
if redis.call('GET', LAYOUT_LOCK) ~= ARGV[1] then return -1 end
local n = 0
for i = 2, #ARGV, 3 do
  if redis.call('TYPE', ARGV[i]).ok == ARGV[i + 2] then
    redis.call('RENAME', ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
