"""Python jobs: RestrictedPython over an allow-listed pandas/numpy API.

``run_python_job`` is the entry point the sandbox process calls; see ``runtime`` for the contract.
"""

from executors.pyjobs.disclosure import DisclosureFinding, DisclosureReport, DisclosureThresholds
from executors.pyjobs.errors import (
    CodeRejected,
    HelperError,
    JobRaised,
    NoResult,
    OutputRejected,
    PyJobError,
    PyJobInterrupted,
    PyJobResourceExhausted,
    SandboxViolation,
)
from executors.pyjobs.helpers import AGGREGATES, UNITS_COLUMN
from executors.pyjobs.runtime import AggregateOutput, PyJobOutcome, PyLimits, WithheldOutput, run_python_job

__all__ = [
    "AGGREGATES",
    "UNITS_COLUMN",
    "AggregateOutput",
    "CodeRejected",
    "DisclosureFinding",
    "DisclosureReport",
    "DisclosureThresholds",
    "HelperError",
    "JobRaised",
    "NoResult",
    "OutputRejected",
    "PyJobError",
    "PyJobInterrupted",
    "PyJobOutcome",
    "PyJobResourceExhausted",
    "PyLimits",
    "SandboxViolation",
    "WithheldOutput",
    "run_python_job",
]
