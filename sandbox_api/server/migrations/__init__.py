"""Alembic migrations of the metadata database, run from code (see sandbox_api.server.store.migrate)."""
