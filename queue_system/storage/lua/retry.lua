-- retry: a failed or cancelled task runs again now, as a manual attempt (lua/actions.lua).
-- KEYS[1]  the key prefix
-- ARGV     id, now
-- Returns  {'ok'} | {'missing'} | {'refused', status}
-- Its history is kept; the retry window and retry count start afresh from here.
return retry_task(ARGV[1], ARGV[2])
