"""Command-line interface: one module per command; no logic a library user would want."""
