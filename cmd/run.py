"""Everything in one command (make run): `queue-system run`."""

import sys

from queue_system.cli import main

main(["run", *sys.argv[1:]], prog_name="queue-system")
