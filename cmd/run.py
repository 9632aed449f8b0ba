"""Everything in one command (make run): `queue-system run`."""

import sys

from queue_system.cli.main import main

main(["run", *sys.argv[1:]], prog_name="queue-system")
