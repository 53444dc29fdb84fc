"""Quotas per principal and the fair choice of the next job (``services.quotas``, pure).

The availability attack: an operator keeps every runner slot busy with heavy jobs (cross joins, a loop
until the CPU limit) and a long backlog, so that another operator's trivial job waits behind all of it.
The scenario runs on a discrete-event simulation of the runner's slots driven by the module's choice,
and, for comparison, by the runner's current claim order (oldest queued job first, whoever owns it),
under which the attack works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from executors.base import Limits
from sandbox_api.server.services.quotas import (
    DAY,
    HOUR,
    PrincipalUsage,
    QueuedJob,
    QuotaLimits,
    check_long_poll,
    check_submission,
    job_limits,
    next_job,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LIMITS = QuotaLimits(concurrent_jobs=1, queued_jobs=3, jobs_per_hour=5, cpu_seconds_per_day=600.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- submissions -----------------------------------------------------------------------------------------


def test_a_full_personal_queue_is_refused_until_a_job_starts() -> None:
    refusal = check_submission(PrincipalUsage(queued=3), LIMITS, now=T0)
    assert refusal is not None
    assert refusal.limit == "queued_jobs"
    assert "3 jobs waiting" in refusal.message
    assert "limit is 3" in refusal.message
    assert refusal.retry_after_s == LIMITS.queue_retry_s


def test_jobs_per_hour_reset_when_the_oldest_leaves_the_window() -> None:
    submitted = [at(-3000), at(-2400), at(-1800), at(-1200), at(-600)]
    refusal = check_submission(PrincipalUsage(queued=0, submitted=submitted), LIMITS, now=T0)
    assert refusal is not None
    assert refusal.limit == "jobs_per_hour"
    assert refusal.retry_after_s == 600  # at(-3000) is an hour old in 600 s
    assert (at(-3000) + HOUR).isoformat(timespec="seconds") in refusal.message
    older = [at(-3700), *submitted[1:]]  # one of them already out of the window
    assert check_submission(PrincipalUsage(queued=0, submitted=older), LIMITS, now=T0) is None


def test_cpu_seconds_per_day_reset_when_enough_usage_ages_out() -> None:
    cpu = [(at(-80_000), 400.0), (at(-40_000), 150.0), (at(-100), 100.0)]  # 650 s of 600
    refusal = check_submission(PrincipalUsage(queued=0, cpu=cpu), LIMITS, now=T0)
    assert refusal is not None
    assert refusal.limit == "cpu_seconds_per_day"
    # Once the 400 s job is a day old, 250 s remain: under the limit.
    assert refusal.retry_after_s == round((at(-80_000) + DAY - T0).total_seconds())
    assert "limit of 600 CPU seconds" in refusal.message
    assert "650" not in refusal.message  # the seconds used would time each job's CPU by difference
    assert check_submission(PrincipalUsage(queued=0, cpu=cpu[1:]), LIMITS, now=T0) is None


def test_long_polls_beyond_the_limit_are_refused_until_one_returns() -> None:
    limits = QuotaLimits(open_long_polls=2)
    assert check_long_poll(1, limits) is None
    refusal = check_long_poll(2, limits)
    assert refusal is not None
    assert refusal.limit == "open_long_polls"
    assert "limit is 2" in refusal.message


def test_a_scope_lowers_the_job_budget_and_cannot_raise_it() -> None:
    deployment = Limits(cpu_s=120, timeout_s=300.0, memory_mb=1024)
    lowered = job_limits(deployment, scope_cpu_s=20, scope_timeout_s=30.0)
    assert (lowered.cpu_s, lowered.timeout_s, lowered.memory_mb) == (20, 30.0, 1024)
    raised = job_limits(deployment, scope_cpu_s=10_000, scope_timeout_s=10_000.0)
    assert (raised.cpu_s, raised.timeout_s) == (120, 300.0)
    assert job_limits(deployment, scope_cpu_s=None, scope_timeout_s=None) == deployment


# -- the next job ----------------------------------------------------------------------------------------


def test_an_owner_at_their_concurrency_limit_is_passed_over() -> None:
    queued = [QueuedJob("a1", "alice", at(0)), QueuedJob("b1", "bob", at(5))]
    chosen = next_job(queued, running={"alice": 1}, last_served={}, limits=LIMITS)
    assert chosen is not None
    assert chosen.job_id == "b1"
    assert next_job(queued[:1], running={"alice": 1}, last_served={}, limits=LIMITS) is None


def test_owners_take_turns_whatever_their_backlog() -> None:
    queued = [QueuedJob(f"a{i}", "alice", at(i)) for i in range(5)] + [QueuedJob("b1", "bob", at(9))]
    chosen = next_job(queued, running={}, last_served={"alice": at(20), "bob": at(10)}, limits=LIMITS)
    assert chosen is not None
    assert chosen.job_id == "b1"
    chosen = next_job(queued, running={}, last_served={"alice": at(20), "bob": at(30)}, limits=LIMITS)
    assert chosen is not None
    assert chosen.job_id == "a0"


def test_an_owner_never_served_goes_first() -> None:
    queued = [QueuedJob("a1", "alice", at(0)), QueuedJob("c1", "carol", at(50))]
    chosen = next_job(queued, running={}, last_served={"alice": at(-1000)}, limits=LIMITS)
    assert chosen is not None
    assert chosen.job_id == "c1"


# -- the availability scenario -------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    at_s: float
    job_id: str
    owner: str
    duration_s: float


Chooser = Callable[[Sequence[QueuedJob], Mapping[str, int], Mapping[str, datetime]], QueuedJob | None]


def fair(
    queued: Sequence[QueuedJob], running: Mapping[str, int], served: Mapping[str, datetime]
) -> QueuedJob | None:
    return next_job(queued, running=running, last_served=served, limits=LIMITS)


def oldest_first(
    queued: Sequence[QueuedJob], running: Mapping[str, int], served: Mapping[str, datetime]
) -> QueuedJob | None:
    """The runner's claim today: ``ORDER BY created_at, id LIMIT 1``, whoever owns it."""
    return min(queued, key=lambda job: (job.queued_at, job.job_id), default=None)


def simulate(submissions: Sequence[Submission], *, slots: int, choose: Chooser) -> dict[str, float]:
    """When each job finishes (seconds), with ``slots`` runner slots claiming through ``choose``."""
    pending = sorted(submissions, key=lambda s: s.at_s)
    by_id = {s.job_id: s for s in submissions}
    queued: list[QueuedJob] = []
    running: dict[str, float] = {}  # job id -> end
    served: dict[str, datetime] = {}
    finished: dict[str, float] = {}
    now = 0.0
    while pending or queued or running:
        while pending and pending[0].at_s <= now:
            s = pending.pop(0)
            queued.append(QueuedJob(s.job_id, s.owner, at(s.at_s)))
        while len(running) < slots:
            counts: dict[str, int] = {}
            for job_id in running:
                counts[by_id[job_id].owner] = counts.get(by_id[job_id].owner, 0) + 1
            job = choose(queued, counts, served)
            if job is None:
                break
            queued.remove(job)
            running[job.job_id] = now + by_id[job.job_id].duration_s
            served[job.owner] = at(now)
        moments = [end for end in running.values()] + [s.at_s for s in pending[:1]]
        if not moments:
            break  # queued jobs no slot may take (every owner at their limit with nothing running)
        now = min(moments)
        for job_id, end in list(running.items()):
            if end <= now:
                del running[job_id]
                finished[job_id] = end
                served[by_id[job_id].owner] = at(end)
    return finished


HEAVY_S = 1800.0  # a cross join or a loop until the CPU limit
THREE_HEAVY_AND_ONE_TRIVIAL = [
    Submission(0.0, "heavy-1", "mallory", HEAVY_S),
    Submission(0.1, "heavy-2", "mallory", HEAVY_S),
    Submission(0.2, "heavy-3", "mallory", HEAVY_S),
    Submission(1.0, "trivial", "alice", 0.3),
]


def test_the_attack_works_on_the_oldest_first_claim() -> None:
    finished = simulate(THREE_HEAVY_AND_ONE_TRIVIAL, slots=2, choose=oldest_first)
    assert finished["trivial"] - 1.0 > 2.0
    assert finished["trivial"] >= HEAVY_S  # it waited until mallory's heavy jobs freed a slot


def test_a_trivial_job_is_released_within_two_seconds_despite_a_heavy_backlog() -> None:
    finished = simulate(THREE_HEAVY_AND_ONE_TRIVIAL, slots=2, choose=fair)
    assert finished["trivial"] - 1.0 <= 2.0
    assert sorted(finished) == ["heavy-1", "heavy-2", "heavy-3", "trivial"]  # mallory is served too


@pytest.mark.parametrize("backlog", [3, 30])
def test_with_one_slot_a_backlog_delays_another_job_by_at_most_one_job(backlog: int) -> None:
    heavy = [Submission(0.1 * i, f"heavy-{i}", "mallory", HEAVY_S) for i in range(backlog)]
    finished = simulate([*heavy, Submission(1.0, "trivial", "alice", 0.3)], slots=1, choose=fair)
    assert finished["trivial"] <= HEAVY_S + 0.3  # only the heavy job already running was ahead


def test_a_principal_cannot_hold_more_long_polls_than_the_quota() -> None:
    """Each open long-poll holds a request: one principal's waits are capped, another's are not, and a
    finished wait frees its place."""
    from sandbox_api.errors import QuotaExceeded
    from sandbox_api.server.services.quotas import LongPolls, QuotaLimits

    polls, limits = LongPolls(), QuotaLimits(open_long_polls=2)
    with polls.held("alice", limits), polls.held("alice", limits):
        with pytest.raises(QuotaExceeded, match="open_long_polls"), polls.held("alice", limits):
            pass
        with polls.held("bob", limits):
            pass
    with polls.held("alice", limits):
        assert polls.open == {"alice": 1}
    assert polls.open == {}
