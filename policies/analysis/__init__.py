"""Static analysis of a parsed query: allow-lists, scopes and release levels."""
