-- delete: remove a task, its history, payload and index entries.
-- KEYS[1]  the key prefix
-- ARGV     id
-- Returns  1 deleted | 0 there was no such task
return purge(ARGV[1]) > 0 and 1 or 0
