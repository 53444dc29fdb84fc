"""Job states and the only allowed transitions (docs/design.md §6).

``advance`` is the one function that changes a job's state. It is idempotent (moving a job to the
state it is already in returns it unchanged, so a replayed step is harmless) and refuses every
transition not listed in ``NEXT``. The service stores jobs its own way and can call ``can_advance``
on the states alone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from executors.errors import JobStateConflict


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


@dataclass(frozen=True)
class Job:
    """The part of a job the lifecycle cares about."""

    id: str
    state: JobState
    reason: str
    updated_at: datetime


def can_advance(current: JobState, to: JobState) -> bool:
    """True if ``current -> to`` is allowed (staying in the same state always is).

    >>> can_advance(JobState.QUEUED, JobState.RUNNING), can_advance(JobState.RELEASED, JobState.QUEUED)
    (True, False)
    """
    return current is to or to in NEXT[current]


def advance(job: Job, to: JobState, *, reason: str, at: datetime) -> Job:
    """``job`` moved to ``to``; the same job if it is already there; ``JobStateConflict`` otherwise.

    >>> from datetime import UTC
    >>> job = Job("j1", JobState.QUEUED, "accepted", datetime(2026, 1, 1, tzinfo=UTC))
    >>> advance(job, JobState.RUNNING, reason="started", at=job.updated_at).state
    <JobState.RUNNING: 'running'>
    """
    if job.state is to:
        return job
    if to not in NEXT[job.state]:
        raise JobStateConflict(f"job {job.id}: {job.state.value} -> {to.value} is not allowed")
    return replace(job, state=to, reason=reason, updated_at=at)
