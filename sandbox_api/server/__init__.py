"""The gateway: the FastAPI app, its routes, the services behind them, the store, migrations and runner.

Only this room imports FastAPI, SQLAlchemy, DuckDB (through ``executors``) and Ray. It may use the
shared modules beside it (wire models in ``sandbox_api.schemas``, the receipt format and its check in
``sandbox_api.receipt_format`` and ``sandbox_api.receipt_check``, the auditor's document names in
``sandbox_api.bundle_format``), never the client, the offline verifier or the CLI
(``tests/sandbox_api/test_import_boundaries.py``).
"""
