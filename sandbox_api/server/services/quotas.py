"""Quotas per principal and a fair choice of the next job: pure functions, no I/O, the time passed in.

The questions, one function each:

- :func:`check_submission`: may this principal queue one more job? It checks queued jobs, jobs per
  hour and CPU seconds per day, and refuses with a :class:`QuotaRefusal` that names the limit and says
  when it resets (the route turns it into 429 with ``Retry-After``).
- :func:`check_long_poll`: may this principal open one more long-poll (a request that waits for a
  job's end)? Each one holds a server thread.
- :func:`job_limits`: the per-job CPU and wall-clock budget, the deployment's unless a scope lowers it.
- :func:`next_job`: which queued job should a free runner slot claim? Never one of a principal who
  already runs ``concurrent_jobs`` jobs (so with more slots than that one principal cannot hold them
  all), and among the others round-robin by owner: the owner served longest ago goes first, with their
  oldest job. One operator's backlog then delays another's job by at most one job's time (none while a
  slot is free), however long the backlog.

The caller reads usage from the jobs table (see :class:`PrincipalUsage`, :class:`QueuedJob`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from executors.base import Limits
from sandbox_api.errors import QuotaExceeded

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class QuotaLimits:
    """Per principal. ``queue_retry_s``: the ``Retry-After`` hint when the queue quota is full (it frees
    when one of their jobs starts, which the principal cannot know in advance)."""

    concurrent_jobs: int = 1
    queued_jobs: int = 10
    jobs_per_hour: int = 120
    cpu_seconds_per_day: float = 4 * 3600.0
    open_long_polls: int = 4
    queue_retry_s: int = 10


@dataclass(frozen=True)
class PrincipalUsage:
    """One principal's usage now: jobs queued, submission times in the last hour, and ``(finished at,
    CPU seconds)`` of their jobs that finished in the last day."""

    queued: int
    submitted: Sequence[datetime] = ()
    cpu: Sequence[tuple[datetime, float]] = ()


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a submission is refused: the limit's name, a sentence for the operator, seconds until it
    resets (for ``Retry-After``)."""

    limit: str
    message: str
    retry_after_s: int


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    owner: str
    queued_at: datetime


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def check_submission(usage: PrincipalUsage, limits: QuotaLimits, *, now: datetime) -> QuotaRefusal | None:
    """None if one more job may be queued; otherwise the first limit it would break.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    >>> limits = QuotaLimits(jobs_per_hour=2)
    >>> check_submission(PrincipalUsage(queued=0, submitted=(t - HOUR / 2,)), limits, now=t) is None
    True
    >>> refusal = check_submission(
    ...     PrincipalUsage(queued=0, submitted=(t - HOUR / 2, t - HOUR / 4)), limits, now=t
    ... )
    >>> refusal.limit, refusal.retry_after_s
    ('jobs_per_hour', 1800)
    """
    if usage.queued >= limits.queued_jobs:
        return QuotaRefusal(
            "queued_jobs",
            f"you have {usage.queued} jobs waiting, the limit is {limits.queued_jobs} per principal; it "
            "frees as soon as one of them starts (or cancel one)",
            limits.queue_retry_s,
        )
    recent = sorted(t for t in usage.submitted if t > now - HOUR)
    if len(recent) >= limits.jobs_per_hour:
        # The window frees one place when the oldest submission that must leave it is an hour old.
        resets = recent[len(recent) - limits.jobs_per_hour] + HOUR
        return QuotaRefusal(
            "jobs_per_hour",
            f"you submitted {len(recent)} jobs in the last hour, the limit is {limits.jobs_per_hour}; the "
            f"next one is allowed at {resets.isoformat(timespec='seconds')}",
            _seconds_until(resets, now),
        )
    spent = sorted((t, s) for t, s in usage.cpu if t > now - DAY)
    total = sum(s for _, s in spent)
    if total >= limits.cpu_seconds_per_day:
        resets = now
        for finished, seconds in spent:  # oldest first: when enough has aged out of the window
            total -= seconds
            resets = finished + DAY
            if total < limits.cpu_seconds_per_day:
                break
        return QuotaRefusal(
            "cpu_seconds_per_day",
            # Not how many seconds were used: differences of that total would time each job's CPU,
            # a channel on the data that the job views close (their phases' timings are hidden).
            f"your jobs reached the limit of {limits.cpu_seconds_per_day:.0f} CPU seconds in 24 hours; "
            "jobs are allowed again at "
            f"{resets.isoformat(timespec='seconds')}",
            _seconds_until(resets, now),
        )
    return None


def check_long_poll(open_now: int, limits: QuotaLimits) -> QuotaRefusal | None:
    """None if the principal may open one more long-poll; it has ``open_now`` open already.

    >>> check_long_poll(3, QuotaLimits(open_long_polls=4)) is None
    True
    >>> check_long_poll(4, QuotaLimits(open_long_polls=4)).limit
    'open_long_polls'
    """
    if open_now < limits.open_long_polls:
        return None
    return QuotaRefusal(
        "open_long_polls",
        f"you have {open_now} requests waiting for jobs to end, the limit is {limits.open_long_polls}; "
        "it frees as soon as one of them returns",
        1,
    )


def job_limits(deployment: Limits, *, scope_cpu_s: int | None, scope_timeout_s: float | None) -> Limits:
    """The job's budget: the deployment's CPU seconds and wall-clock limit, each lowered (never raised)
    by the scope's own where it sets one.

    >>> job_limits(Limits(cpu_s=120, timeout_s=60.0), scope_cpu_s=30, scope_timeout_s=None)
    Limits(timeout_s=60.0, memory_mb=2048, cpu_s=30, threads=2, open_files=256)
    >>> job_limits(Limits(cpu_s=120, timeout_s=60.0), scope_cpu_s=600, scope_timeout_s=10.0).cpu_s
    120
    """
    return replace(
        deployment,
        cpu_s=deployment.cpu_s if scope_cpu_s is None else min(deployment.cpu_s, scope_cpu_s),
        timeout_s=deployment.timeout_s
        if scope_timeout_s is None
        else min(deployment.timeout_s, scope_timeout_s),
    )


def next_job(
    queued: Sequence[QueuedJob],
    *,
    running: Mapping[str, int],
    last_served: Mapping[str, datetime],
    limits: QuotaLimits,
) -> QueuedJob | None:
    """The job a free slot should claim, or None (nothing queued, or every owner at their limit).

    ``running``: jobs running per owner; ``last_served``: when each owner's latest job started or ended
    (owners never served go first).

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> backlog = [QueuedJob(f"a{i}", "alice", t + timedelta(seconds=i)) for i in range(3)]
    >>> bobs = QueuedJob("b0", "bob", t + timedelta(seconds=10))
    >>> next_job([*backlog, bobs], running={}, last_served={"alice": t}, limits=QuotaLimits()).job_id
    'b0'
    """
    oldest: dict[str, QueuedJob] = {}
    for job in queued:
        if running.get(job.owner, 0) >= limits.concurrent_jobs:
            continue
        current = oldest.get(job.owner)
        if current is None or (job.queued_at, job.job_id) < (current.queued_at, current.job_id):
            oldest[job.owner] = job
    if not oldest:
        return None

    def turn(owner: str) -> tuple[bool, datetime, datetime, str]:
        served = last_served.get(owner)
        first = oldest[owner].queued_at
        return (served is not None, served or first, first, owner)

    return oldest[min(oldest, key=turn)]


@dataclass
class LongPolls:
    """The long-polls each principal holds open in this gateway (the one stateful piece here)."""

    open: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def held(self, principal: str, limits: QuotaLimits) -> Iterator[None]:
        """Count one more long-poll of ``principal`` while the block runs; ``QuotaExceeded`` (429) if
        they already hold ``limits.open_long_polls``."""
        with self.lock:
            refusal = check_long_poll(self.open.get(principal, 0), limits)
            if refusal is not None:
                raise QuotaExceeded(
                    f"quota {refusal.limit}: {refusal.message}", extra={"retry_after": refusal.retry_after_s}
                )
            self.open[principal] = self.open.get(principal, 0) + 1
        try:
            yield
        finally:
            with self.lock:
                self.open[principal] -= 1
                if not self.open[principal]:
                    del self.open[principal]
