"""Configuration: the settings table and its loader (settings), the value parsers (parsing) and how a
field is named in an error (field_paths)."""
