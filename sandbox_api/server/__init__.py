"""The gateway: the FastAPI app, its routes, the services behind them, the store, migrations and runner.

Only this room imports FastAPI, SQLAlchemy, DuckDB (through ``executors``) and Ray. It may use the
shared wire models (``sandbox_api.schemas``) and the receipt format (``sandbox_api.client.receipt_format``),
never the client, the offline verifier or the CLI.
"""
