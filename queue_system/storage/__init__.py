"""Redis storage: every key name in `keys.py`, Dramatiq's wire format in `dramatiq_wire.py`, every
state change one Lua script in `lua/` (loaded and rendered by `scripts.py`)."""
