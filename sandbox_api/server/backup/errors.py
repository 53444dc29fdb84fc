"""The backup package's errors: ``BackupError`` and its kinds, each also the service error it is.

Backups are local operations, never HTTP, but they belong to the service's one error family: each kind
takes the stable code of the service error it is (``invalid-input`` for a damaged backup or a weak
passphrase, ``not-authenticated`` for a wrong passphrase, ``conflict`` for a target in use or another
store, ``service-unavailable`` for a database tool that fails, ``deployment-not-initialised`` for
nothing to back up), and its detail says exactly what went wrong. The CLI prints both.
"""

from __future__ import annotations

from sandbox_api.errors import (
    Conflict,
    DeploymentNotInitialised,
    InvalidInput,
    NotAuthenticated,
    ServiceError,
    ServiceUnavailable,
)


class BackupError(ServiceError):
    """Base of every failure of a backup or a restore."""


class NoDeployment(BackupError, DeploymentNotInitialised):
    """A state directory without a deployment (no keyring) to back up."""


class BackupDamaged(BackupError, InvalidInput):
    """A backup whose files do not match its manifest, or whose manifest or keyring does not read."""


class WeakPassphrase(BackupError, InvalidInput):
    """A passphrase too short to protect the keyring."""


class WrongPassphrase(BackupError, NotAuthenticated):
    """The keyring in the backup does not open with the passphrase given (or its listing changed)."""


class TargetNotEmpty(BackupError, Conflict):
    """A backup goes into a new folder; a restore only into an empty state directory and database."""


class StoreMismatch(BackupError, Conflict):
    """A backup of one kind of metadata store restored into the other."""


class DatabaseToolFailed(BackupError, ServiceUnavailable):
    """pg_dump or pg_restore is missing or failed, or the database cannot be read."""
