"""What a user of the service holds: the HTTP client, the auditor's client, the offline verifier and the
receipt and bundle formats.

Nothing here imports the server: an auditor installs the base distribution (no FastAPI, DuckDB or Ray)
and verifies receipts and audit bundles offline.
"""
