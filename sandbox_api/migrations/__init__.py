"""Alembic migrations of the metadata database, run programmatically (see sandbox_api.store.migrate)."""
