"""Typed errors of the ``executors`` package.

Every error has a stable ``code``; ``sandbox_api`` alone maps codes to HTTP statuses. Messages are
written by this package and may reach the operator, so they never carry data values: an engine error
whose text could quote a value is reduced to its error class (see ``engine.sanitize``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from crypto.errors import IntegrityError


class ExecutionError(Exception):
    """Base class of every failure raised by ``executors``."""

    code: ClassVar[str] = "execution-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ExecutionTimeout(ExecutionError):
    """The job ran past its wall-clock limit and its sandbox process was killed."""

    code = "execution-timeout"


class ExecutionCancelled(ExecutionError):
    """The job was cancelled (or the executor closed) while it was waiting or running."""

    code = "execution-cancelled"


class ResourceExhausted(ExecutionError):
    """The job hit a resource limit: memory, CPU time, open files."""

    code = "resource-exhausted"


class ExecutionFailed(ExecutionError):
    """The query failed in the engine, or the sandbox process crashed."""

    code = "execution-failed"


class DataUnavailable(ExecutionError):
    """A part file is missing or unreadable, or the data key cannot be unwrapped (unknown, destroyed)."""

    code = "data-unavailable"


class StorageError(ExecutionError):
    """A dataset version cannot be written: bad names, missing unit column, version already stored."""

    code = "storage-error"


class PartIntegrityError(ExecutionError, IntegrityError):
    """A part failed authentication: tampered, truncated, or moved from another version, table or dataset.

    It is both an :class:`ExecutionError` (callers of ``Executor.run`` catch one family) and a
    ``crypto`` :class:`IntegrityError` (the service treats it like any other integrity failure).
    """

    code = "integrity-error"


class SandboxWallDown(ExecutionError):
    """A wall of the job's sandbox could not be raised, and the deployment's isolation level requires it:
    the job did not run. The detail names the wall and the kernel's reason (no data is involved)."""

    code = "sandbox-wall-down"


# The codes a sandbox child may report back; the parent rebuilds only these classes, so a
# compromised child cannot make the parent raise anything else.
BY_CODE: Mapping[str, type[ExecutionError]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            ExecutionError,
            ExecutionTimeout,
            ExecutionCancelled,
            ResourceExhausted,
            ExecutionFailed,
            DataUnavailable,
            PartIntegrityError,
            SandboxWallDown,
        )
    }
)
