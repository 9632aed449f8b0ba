"""The worker (make run-worker): `queue-system worker`, which becomes the dramatiq CLI. Needs REDIS_URL."""

import sys

from queue_system.cli.main import main

main(["worker", *sys.argv[1:]], prog_name="queue-system")
