"""Encrypted dataset storage and sandboxed execution of jobs (local fork server; Ray later)."""

from executors.base import Executor, JobSpec, Limits, PartRef, ResultTable, TableInput, VersionLayout
from executors.errors import (
    DataUnavailable,
    ExecutionCancelled,
    ExecutionError,
    ExecutionFailed,
    ExecutionTimeout,
    PartIntegrityError,
    ResourceExhausted,
    SandboxWallDown,
    StorageError,
)
from executors.local import LocalExecutor
from executors.storage import read_table, version_id_of, write_version

__all__ = [
    "DataUnavailable",
    "ExecutionCancelled",
    "ExecutionError",
    "ExecutionFailed",
    "ExecutionTimeout",
    "Executor",
    "JobSpec",
    "Limits",
    "LocalExecutor",
    "PartIntegrityError",
    "PartRef",
    "ResourceExhausted",
    "ResultTable",
    "SandboxWallDown",
    "StorageError",
    "TableInput",
    "VersionLayout",
    "read_table",
    "version_id_of",
    "write_version",
]
