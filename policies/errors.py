"""Typed errors of the policy engine; each has a stable ``code`` the service maps to a status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from policies.findings import Finding


class PolicyError(Exception):
    """Base class of every error raised by ``policies``."""

    code: ClassVar[str] = "policy-error"

    def __init__(self, detail: str, *, findings: Sequence[Finding] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.findings: tuple[Finding, ...] = tuple(findings)


class PolicyViolation(PolicyError):
    """A query breaks the scope; ``findings`` lists every reason, not only the first."""

    code = "policy-violation"


class ScopeInvalid(PolicyError):
    """A scope document does not validate, or does not fit the catalog it names."""

    code = "scope-invalid"


class UnknownReference(PolicyError):
    """A dataset or table reference does not exist in the catalog."""

    code = "unknown-reference"


class PassOrderError(PolicyError):
    """A rewrite pass ran before the pass it depends on (a programming error, not a user error)."""

    code = "pass-order"


class OutputInvalid(PolicyError):
    """A result table handed to the output check lacks what the rewrite promised (e.g. `_sbx_units`)."""

    code = "output-invalid"
