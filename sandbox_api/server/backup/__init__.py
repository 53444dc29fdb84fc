"""Backups of a deployment and their restore (docs/operations.md, "Backups and restore").

A backup is a folder: the metadata database (a SQLite copy or a PostgreSQL dump), the encrypted data
files, the keyring sealed under the operator's passphrase, and a manifest of every file's hash.
``archive`` writes and restores one; ``metadata`` copies the database; ``manifest`` lists the files.
"""
