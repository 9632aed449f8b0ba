"""Benchmarks for queue_system: `make bench` (full) and `make bench-quick` (smoke).

Every figure is a ratio against a baseline measured in the same run (A B A B ...), because these
machines are small and shared. See bench/README.md.
"""
