"""The backup package's one error family. Backups are local operations, never HTTP: the CLI prints
the code and the detail."""

from __future__ import annotations

from typing import ClassVar


class BackupError(Exception):
    """Base of every failure of a backup or a restore."""

    code: ClassVar[str] = "backup-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BackupDamaged(BackupError):
    """A backup whose files do not match its manifest, or whose manifest does not read."""

    code = "backup-damaged"


class WrongPassphrase(BackupError):
    """The keyring in the backup does not open with the passphrase given (or its listing changed)."""

    code = "backup-wrong-passphrase"


class RestoreTargetNotEmpty(BackupError):
    """A restore goes only into an empty state directory and an empty database."""

    code = "restore-target-not-empty"


class DatabaseToolFailed(BackupError):
    """pg_dump or pg_restore is missing or failed."""

    code = "backup-database-tool-failed"
