"""Redis storage: every key name in `keys.py`, every state change one Lua script in `scripts.py`."""
