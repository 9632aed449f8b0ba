"""The API alone (make run-api): `queue-system api`. Needs REDIS_URL."""

import sys

from queue_system.cli.main import main

main(["api", *sys.argv[1:]], prog_name="queue-system")
