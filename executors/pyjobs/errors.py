"""Typed errors of the Python-job runtime.

Every error has a stable ``code`` and a ``detail`` written by this package. A detail never quotes a
data value: exceptions raised by the job's own code are reduced to their type, the line of the job
where they surfaced, and a generic hint (see ``runtime``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from executors.errors import ExecutionError


class PyJobError(ExecutionError):
    """Base class of every failure of a Python job (one family with the rest of ``executors``)."""

    code: ClassVar[str] = "pyjob-error"

    def __init__(self, detail: str, *, findings: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.findings = tuple(findings)


class CodeRejected(PyJobError):
    """The code does not compile under the restricted policy (every finding is listed)."""

    code = "pyjob-code-rejected"


class SandboxViolation(PyJobError):
    """The code tried something the sandbox forbids: a denied attribute, module, write or call."""

    code = "pyjob-sandbox-violation"


class JobRaised(PyJobError):
    """The code raised an exception; only its type and line are reported, never its message."""

    code = "pyjob-raised"


class PyJobResourceExhausted(PyJobError):
    """The job ran out of memory, CPU time or recursion depth."""

    code = "pyjob-resource-exhausted"


class PyJobInterrupted(PyJobError):
    """The job was interrupted (SystemExit, KeyboardInterrupt or a similar signal)."""

    code = "pyjob-interrupted"


class NoResult(PyJobError):
    """The job neither assigned ``result`` nor printed anything."""

    code = "pyjob-no-result"


class OutputRejected(PyJobError):
    """The job's result cannot be turned into a reviewable output (unsupported type, too large)."""

    code = "pyjob-output-rejected"


class HelperError(PyJobError):
    """``aggregate()`` was called with arguments it cannot honour (the message names them)."""

    code = "pyjob-helper-error"
