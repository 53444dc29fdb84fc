"""Dominance and p% on SQL jobs through a live deployment, where the scope asks for them: ordinary
sums and means over many people are released exactly as without the rule (no false refusal), and a
job the rule judged replays to a match. The attack the rule closes (one dominant earner's income from a
SUM over k people) is ``tests/executors/test_dominance_sql.py``; this data has no dominant earner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import GOOD_SQL, World, scope_yaml, world
from tests.sandbox_api.python_job_helpers import approve_scope, result_of, submit
from tests.sandbox_api.replay_helpers import replay_report


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment


def approved(api: World, name: str, *, dominance: bool) -> str:
    document = scope_yaml(name=name)
    if dominance:
        document = document.replace("  max_rows: 1000\n", "  max_rows: 1000\n  dominance: {}\n")
        assert "dominance: {}" in document
    approve_scope(api, document, name)
    return name


def released(api: World, scope: str, sql: str) -> tuple[str, dict[str, object]]:
    answer = submit(api, {"scope": scope, "sql": sql})
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["job_id"], timeout_s=60.0)
    assert job["state"] == "released", job
    return str(job["job_id"]), result_of(api, job["job_id"])


def test_ordinary_sums_and_means_are_released_as_without_the_rule(api: World) -> None:
    sql = (
        "SELECT district, sex, SUM(income) AS total, AVG(income) AS mean FROM citizens GROUP BY district, sex"
    )
    _, plain = released(api, approved(api, "dominance-off", dominance=False), sql)
    job_id, judged = released(api, approved(api, "dominance-on", dominance=True), sql)
    assert sorted(map(str, judged["rows"])) == sorted(map(str, plain["rows"]))  # type: ignore[call-overload]
    assert judged["rows"]
    report = replay_report(api.client, api.h("audra"), job_id)
    assert report["outcome"] == "match", report


def test_the_rewritten_query_of_a_judged_scope_lists_contributions_only_there(api: World) -> None:
    """The dry run shows the pass where the scope asks for it (and only there)."""
    on = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": "dominance-on", "sql": GOOD_SQL}
    )
    off = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": "dominance-off", "sql": GOOD_SQL}
    )
    assert on.status_code == off.status_code == 200, (on.text, off.text)
    assert "collect_contributions" in on.json()["applied"]
    assert "collect_contributions" not in off.json()["applied"]
