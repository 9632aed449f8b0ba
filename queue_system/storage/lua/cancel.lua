-- cancel: a waiting task (pending, scheduled, retrying) will not run; its message is skipped
-- (lua/actions.lua). A parked task leaves its host's or endpoint's parked set (and a released one
-- the slots held for it); a held one (its queue is paused) leaves its queue's held set.
-- KEYS[1]  the key prefix
-- ARGV     id, now, retention_ms
-- Returns  {'ok'} | {'missing'} | {'refused', status}
return cancel_task(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
