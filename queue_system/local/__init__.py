"""The local stack `queue-system run` (`make run`) starts on one machine: the launcher, the embedded
Redis, the dev mailbox (SMTP) and the run state file the CLI reads to find the API. Production runs
the API and the workers on their own (`queue-system api`, `queue-system worker`) and none of this."""
