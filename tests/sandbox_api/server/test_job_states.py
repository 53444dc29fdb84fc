"""The job lifecycle: allowed transitions, staying put is harmless, refused jumps."""

from __future__ import annotations

import itertools

import pytest

from sandbox_api.errors import JobStateConflict
from sandbox_api.server.services.job_states import NEXT, TERMINAL, JobState, can_advance, require_transition


def test_happy_path_to_release() -> None:
    path = (JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING, JobState.CHECKING, JobState.RELEASED)
    for current, to in itertools.pairwise(path):
        require_transition("j-1", current, to)
        assert can_advance(current, to)


def test_withheld_goes_to_review() -> None:
    require_transition("j-1", JobState.CHECKING, JobState.WITHHELD)
    require_transition("j-1", JobState.WITHHELD, JobState.DENIED)


def test_replaying_a_transition_changes_nothing() -> None:
    for state in JobState:
        assert can_advance(state, state)
        require_transition("j-1", state, state)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_are_final(state: JobState) -> None:
    for target in JobState:
        if target is not state:
            with pytest.raises(JobStateConflict):
                require_transition("j-1", state, target)


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
        require_transition("j-1", current, target)
    assert f"is {current.value}; it cannot become {target.value}" in raised.value.detail


def test_release_is_reachable_only_through_checking() -> None:
    sources = {state for state, targets in NEXT.items() if JobState.RELEASED in targets}
    assert sources == {JobState.CHECKING, JobState.WITHHELD}


def test_every_state_has_an_entry() -> None:
    assert set(NEXT) == set(JobState)
