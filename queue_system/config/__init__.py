"""Configuration: each setting declared once as a field of the typed settings dataclasses (settings,
api_settings, worker_settings), how such a field is declared, loaded and listed (declare), the value
parsers (parsing, and delegated for rules that live elsewhere) and how a field is named in an error
(field_paths)."""
