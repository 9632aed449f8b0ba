"""End-to-end tests: the real API and worker processes, a real Redis, a real HTTP receiver."""
