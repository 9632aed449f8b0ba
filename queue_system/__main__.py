"""`python -m queue_system ...` is `queue-system ...` (how `queue-system run` starts its children)."""

from queue_system.cli.main import main

main(prog_name="queue-system")
