"""The service's typed errors. Each has a stable `code`; problems.py maps codes to HTTP statuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of every failure the service reports to a caller."""

    code: ClassVar[str] = "service-error"

    def __init__(
        self,
        detail: str,
        *,
        findings: Sequence[Any] = (),
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.findings = tuple(findings)
        # Extra members of the problem document (e.g. the id of a stored, rejected job).
        self.extra: Mapping[str, object] = dict(extra or {})


class NotAuthenticated(ServiceError):
    code = "not-authenticated"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not-found"


class Conflict(ServiceError):
    code = "conflict"


class InvalidInput(ServiceError):
    code = "invalid-input"


class InvalidUpload(ServiceError):
    code = "invalid-upload"


class PayloadTooLarge(ServiceError):
    code = "payload-too-large"


class UnsupportedMediaType(ServiceError):
    code = "unsupported-media-type"


class ScopeNotActive(ServiceError):
    code = "scope-not-active"


class ScopeExpired(ScopeNotActive):
    code = "scope-expired"


class ScopeInconsistent(ServiceError):
    code = "scope-inconsistent"


class JobRejected(ServiceError):
    code = "job-rejected"


class JobNotReady(ServiceError):
    code = "job-not-ready"


class JobStateConflict(ServiceError):
    code = "job-state-conflict"


class QueueFull(ServiceError):
    code = "queue-full"


class QuotaExceeded(ServiceError):
    """A per-principal quota (``services/quotas.py``): the detail names the limit and when it resets."""

    code = "quota-exceeded"


class ServiceUnavailable(ServiceError):
    code = "service-unavailable"


class DatabaseUnavailable(ServiceError):
    """The metadata database dropped the connection or refused a new one (a failover in progress); the
    next request connects afresh. A transaction cut off while committing may still have committed."""

    code = "database-unavailable"


class DeploymentNotInitialised(ServiceError):
    code = "deployment-not-initialised"
