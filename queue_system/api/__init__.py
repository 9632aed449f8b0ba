"""The HTTP API (Litestar). Build it with `create_app(settings)`."""
