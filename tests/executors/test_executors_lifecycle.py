"""The job lifecycle: allowed transitions, idempotent replays, refused jumps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from executors.errors import JobStateConflict
from executors.lifecycle import NEXT, TERMINAL, Job, JobState, advance, can_advance

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def _job(state: JobState) -> Job:
    return Job(id="j-1", state=state, reason="", updated_at=AT)


def test_happy_path_to_release() -> None:
    job = _job(JobState.SUBMITTED)
    for state in (JobState.QUEUED, JobState.RUNNING, JobState.CHECKING, JobState.RELEASED):
        job = advance(job, state, reason=f"to {state.value}", at=LATER)
    assert job.state is JobState.RELEASED
    assert job.reason == "to released"
    assert job.updated_at == LATER


def test_withheld_goes_to_review() -> None:
    job = advance(_job(JobState.CHECKING), JobState.WITHHELD, reason="python output", at=LATER)
    assert advance(job, JobState.DENIED, reason="checker refused", at=LATER).state is JobState.DENIED


def test_replaying_a_transition_changes_nothing() -> None:
    job = advance(_job(JobState.QUEUED), JobState.RUNNING, reason="started", at=LATER)
    assert advance(job, JobState.RUNNING, reason="started again", at=AT) is job


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_are_final(state: JobState) -> None:
    for target in JobState:
        if target is not state:
            with pytest.raises(JobStateConflict):
                advance(_job(state), target, reason="", at=LATER)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.SUBMITTED, JobState.RUNNING),
        (JobState.QUEUED, JobState.RELEASED),
        (JobState.RUNNING, JobState.RELEASED),
        (JobState.CHECKING, JobState.QUEUED),
        (JobState.WITHHELD, JobState.RUNNING),
    ],
)
def test_skipping_steps_is_refused(current: JobState, target: JobState) -> None:
    assert not can_advance(current, target)
    with pytest.raises(JobStateConflict) as raised:
        advance(_job(current), target, reason="", at=LATER)
    assert f"{current.value} -> {target.value}" in raised.value.detail


def test_release_is_reachable_only_through_checking() -> None:
    sources = {state for state, targets in NEXT.items() if JobState.RELEASED in targets}
    assert sources == {JobState.CHECKING, JobState.WITHHELD}


def test_every_state_has_an_entry() -> None:
    assert set(NEXT) == set(JobState)
