"""The command line: `queue-system` (main), its API client commands (client, dev), the HTTP calls and
exit codes they share (http) and how answers are printed (render)."""
