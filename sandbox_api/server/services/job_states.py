"""Job states and the only allowed transitions (docs/design.md §6), owned by the service layer.

The service stores jobs in its metadata database; :func:`require_transition` is the one check every
state change passes (``JobService.transition``). Staying in the same state is always allowed, so a
replayed step is harmless; every transition not listed in ``NEXT`` is refused with the service's
:class:`~sandbox_api.errors.JobStateConflict`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from sandbox_api.errors import JobStateConflict


class JobState(enum.StrEnum):
    SUBMITTED = "submitted"
    REJECTED = "rejected"  # static findings: nothing ran
    QUEUED = "queued"
    RUNNING = "running"
    CHECKING = "checking"  # output check on the aggregate
    RELEASED = "released"
    WITHHELD = "withheld"  # awaiting an output checker
    DENIED = "denied"  # an output checker refused release
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # the scope stopped being valid before the job could start


TERMINAL: frozenset[JobState] = frozenset(
    {
        JobState.REJECTED,
        JobState.RELEASED,
        JobState.DENIED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.EXPIRED,
    }
)

NEXT: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        JobState.SUBMITTED: frozenset(
            {JobState.REJECTED, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED}
        ),
        JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED}),
        # RUNNING -> QUEUED: a job interrupted by a gateway restart, re-queued before anything was released.
        JobState.RUNNING: frozenset(
            {JobState.CHECKING, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
        ),
        JobState.CHECKING: frozenset({JobState.RELEASED, JobState.WITHHELD, JobState.FAILED}),
        JobState.WITHHELD: frozenset({JobState.RELEASED, JobState.DENIED, JobState.CANCELLED}),
    }
    | {state: frozenset() for state in TERMINAL}
)


def can_advance(current: JobState, to: JobState) -> bool:
    """True if ``current -> to`` is allowed (staying in the same state always is).

    >>> can_advance(JobState.QUEUED, JobState.RUNNING), can_advance(JobState.RELEASED, JobState.QUEUED)
    (True, False)
    """
    return current is to or to in NEXT[current]


def require_transition(job_id: str, current: JobState, to: JobState) -> None:
    """Nothing if ``current -> to`` is allowed; :class:`JobStateConflict` naming both states otherwise.

    >>> require_transition("j1", JobState.QUEUED, JobState.RUNNING)
    >>> require_transition("j1", JobState.RELEASED, JobState.QUEUED)
    Traceback (most recent call last):
    ...
    sandbox_api.errors.JobStateConflict: job j1 is released; it cannot become queued
    """
    if not can_advance(current, to):
        raise JobStateConflict(f"job {job_id} is {current.value}; it cannot become {to.value}")
