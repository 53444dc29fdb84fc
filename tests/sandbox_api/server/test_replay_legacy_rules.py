"""Replay reproduces a job as it was released, under the disclosure rules of its day.

The disclosure fixes of the red-team round (``test_redteam_disclosure.py``) changed what some releases
hold: how a rounding report counts, whether a Python job that prints nothing goes to a checker, whether
a released ``aggregate()`` table's report lists its model fits, and how many rows a mock twin has. A
job released before them must still replay to ``match``: it is stored without the ``rules`` marker in
its release facts (``services/release_facts.py``), and replay reproduces the rules it ran under.

Each test releases a job the way a deployment did before the fixes (the runner marks the rules it
releases under with ``release_facts.RULES``, set here to ``LEGACY_RULES``), then removes the marker
from the stored facts, as a job stored then has none, and replays it. The same job replayed under the
current rules (the marker set to them) is ``release-differs``: what replay did before it read the
marker. New jobs still get the fixed rules (the last test, and the attack tests).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_api.server.services import release_facts
from tests.sandbox_api.api_helpers import SCOPE, World, scope_yaml, world
from tests.sandbox_api.auditing_helpers import replay
from tests.sandbox_api.python_job_helpers import approve_scope, python_scope_yaml, result_of, run_job

PYTHON_SCOPE = "legacy-python"
ROUNDED_SCOPE = "legacy-rounded"
# 1,500 citizens: a count already a multiple of 5, which rounding does not move.
EVERYONE = "SELECT COUNT(*) AS n FROM citizens"
CITIZENS = 1_500


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        approve_scope(deployment, python_scope_yaml(PYTHON_SCOPE, checkers=1), PYTHON_SCOPE)
        approve_scope(deployment, scope_yaml(name=ROUNDED_SCOPE, rounding="{base: 5}"), ROUNDED_SCOPE)
        yield deployment


def released_before_the_fixes(api: World, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` run and released as a deployment did before the fixes, then stored as a job of that
    day is: its release facts carry no ``rules`` marker."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(release_facts, "RULES", release_facts.LEGACY_RULES)
        job = run_job(api, body)
    assert job["state"] == "released", job["reason"]
    set_rules(api, job["job_id"], None)
    return job


def set_rules(api: World, job_id: str, rules: int | None) -> None:
    """The ``rules`` marker of a stored job's release facts: removed (None) or set."""
    path = api.settings.state_dir / "metadata.db"
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT release_facts FROM jobs WHERE id = ?", (job_id,)).fetchone()
        facts = json.loads(stored)
        facts.pop("rules", None)
        if rules is not None:
            facts["rules"] = rules
        db.execute("UPDATE jobs SET release_facts = ? WHERE id = ?", (json.dumps(facts), job_id))


def replays_as_released(api: World, job_id: str) -> list[str]:
    """The job replays to ``match`` as stored; with the current rules' marker it does not (returns the
    mismatched fields of that replay)."""
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    set_rules(api, job_id, release_facts.RULES)
    try:
        current = replay(api, job_id)
    finally:
        set_rules(api, job_id, None)
    assert current["outcome"] == "mismatch", current
    assert current["kind"] == "release-differs", current
    return [m["field"] for m in current["mismatches"]]


def test_a_rounded_job_released_before_every_cell_was_counted_replays_to_match(api: World) -> None:
    """Rounding: the report of a job released then counted only the cells whose value moved (0 for a
    count of 1,500 under base 5); today's report counts every rounded cell."""
    job = released_before_the_fixes(api, {"scope": ROUNDED_SCOPE, "sql": EVERYONE})
    released = result_of(api, job["job_id"])
    assert released["rows"] == [[CITIZENS]]
    assert released["receipt"]["suppression"]["cells_rounded"] == 0
    assert replays_as_released(api, job["job_id"]) == ["suppression"]


def test_a_python_job_whose_print_wrote_nothing_replays_released_without_review(api: World) -> None:
    """Printing: a job released then whose ``print`` wrote nothing was released automatically; today
    any job whose code prints goes to a checker."""
    code = "print('', end='')\nresult = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})\n"
    job = released_before_the_fixes(api, {"scope": PYTHON_SCOPE, "kind": "python", "code": code})
    assert not result_of(api, job["job_id"])["receipt"]["suppression"].get("reviewed_by")
    assert "release.decision" in replays_as_released(api, job["job_id"])


FITTED = (
    "import numpy as np\n"
    "np.polyfit(citizens['income'].to_numpy(), citizens['income'].to_numpy(), 1)\n"
    "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})\n"
)


def test_a_released_python_table_whose_report_listed_its_model_fits_replays_to_match(api: World) -> None:
    """Model fits: the report released with a job's ``aggregate()`` table listed its fits then; today
    only a withheld table's report does."""
    job = released_before_the_fixes(api, {"scope": PYTHON_SCOPE, "kind": "python", "code": FITTED})
    assert "residual degrees of freedom" in json.dumps(result_of(api, job["job_id"])["output"])
    assert "result.output_sha256" in replays_as_released(api, job["job_id"])


def test_a_mock_job_on_a_twin_of_the_tables_size_replays_to_match(api: World) -> None:
    """Mock twins: a twin had its table's row count (1,500 here) then; today every twin has 1,000."""
    job = released_before_the_fixes(api, {"scope": SCOPE, "sql": EVERYONE, "mode": "mock"})
    assert result_of(api, job["job_id"])["rows"] == [[CITIZENS]]
    assert "result.row_digests" in replays_as_released(api, job["job_id"])


def stored_rules(api: World, job_id: str) -> Any:
    with sqlite3.connect(api.settings.state_dir / "metadata.db") as db:
        (stored,) = db.execute("SELECT release_facts FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return json.loads(stored).get("rules")


def test_new_jobs_are_marked_and_released_under_the_fixed_rules(api: World) -> None:
    job = run_job(api, {"scope": ROUNDED_SCOPE, "sql": EVERYONE})
    assert job["state"] == "released", job["reason"]
    assert result_of(api, job["job_id"])["receipt"]["suppression"]["cells_rounded"] == 1
    assert stored_rules(api, job["job_id"]) == release_facts.RULES
    assert replay(api, job["job_id"])["outcome"] == "match"


def test_a_job_stored_before_the_fixes_and_run_after_them_is_released_under_the_fixed_rules(
    api: World,
) -> None:
    """The old rules exist only for replay: a job stored without the marker (queued across the
    upgrade) that the runner releases now is released under the current rules and marked so, so that
    its replay matches too."""
    unmarked = release_facts.ReleaseFacts.to_json

    def as_before(facts: release_facts.ReleaseFacts) -> dict[str, Any]:
        stored = unmarked(facts)
        del stored["rules"]
        return stored

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(release_facts.ReleaseFacts, "to_json", as_before)
        job = run_job(api, {"scope": ROUNDED_SCOPE, "sql": EVERYONE})
    assert job["state"] == "released", job["reason"]
    assert result_of(api, job["job_id"])["receipt"]["suppression"]["cells_rounded"] == 1
    assert stored_rules(api, job["job_id"]) == release_facts.RULES
    assert replay(api, job["job_id"])["outcome"] == "match"
