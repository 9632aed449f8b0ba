"""Outbound effects (HTTP). Imports only `domain`."""
