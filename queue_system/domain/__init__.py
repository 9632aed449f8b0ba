"""Pure domain logic: task model, state machine, retry policy. Imports nothing of ours."""
