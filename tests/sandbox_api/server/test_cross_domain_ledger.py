"""The released-cohort ledger on cross-domain cells, through the API: a pair of cross-domain jobs whose
cells differ by one person must not release that person's values.

The analyst's fact: the benefits paid to the oldest citizen who receives any (``TARGET``). The first job
totals benefits by district; the second is the same question ``WHERE c.birth_date > <their birth
date>``, which removes exactly that person. Both cells have far more than ``min_units`` people, so the
k rule passes both; only the ledger, which sketches each released cell's doubly blinded tokens under
per-lineage keys, can see that they differ by one person.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from sandbox_api.server.app import create_app
from tests.sandbox_api.api_helpers import (
    DATASET,
    DOMAIN,
    OTHER_DOMAIN,
    World,
    citizens_table,
    csv_bytes,
    upload,
)
from tests.sandbox_api.auditing_helpers import replay, result_of
from tests.sandbox_api.cross_domain_helpers import (
    BENEFITS,
    BENEFITS_MANIFEST,
    benefits_table,
    cross_domain_world,
    probe_executor,
)

XD = "benefits-by-age"
K = 10
TOTALS = (
    "SELECT c.district AS district, COUNT(DISTINCT c.person_id) AS people, SUM(b.amount) AS total "
    "FROM citizens AS c JOIN benefits AS b ON c.person_id = b.person_id {where}GROUP BY c.district"
)


def _scope() -> str:
    return f"""
scope: {XD}
purpose: "Benefit payments by district and age"
grantees: [operator:alice, operator:bob]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
      sex: {{use: filter}}
      birth_date: {{use: filter}}
  {OTHER_DOMAIN}/{BENEFITS}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      amount: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 5000]}}
disclosure:
  min_units: {K}
  suppression: drop
  max_rows: 1000
"""


def _joined() -> pd.DataFrame:
    return benefits_table().to_pandas().merge(citizens_table().to_pandas(), on="person_id")


def _target() -> pd.Series:
    """The oldest citizen with benefits, among the districts whose cells are released."""
    joined = _joined()
    people = joined.groupby("district")["person_id"].nunique()
    released = joined[joined["district"].isin(people[people >= 2 * K].index)]
    return released.sort_values("birth_date").iloc[0]


def _where_after(day: object) -> str:
    return f"WHERE c.birth_date > DATE '{day}' "


@contextmanager
def _deployment(state_dir: Path) -> Iterator[World]:
    """A deployment with citizens (one domain), benefits (the other) and the scope over both."""
    with cross_domain_world(state_dir, _scope(), XD) as (_, world):
        yield world


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with _deployment(tmp_path_factory.mktemp("state")) as world:
        yield world


def _run(api: World, sql: str, *, who: str = "alice") -> tuple[dict[str, Any], dict[str, Any]]:
    answer = api.client.post(
        "/v1/jobs", headers=api.h(who), json={"scope": XD, "kind": "cross-domain", "sql": sql}
    )
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["job_id"], who=who)
    assert job["state"] == "released", job
    return job, result_of(api, job["job_id"], who=who)


def _rows(result: dict[str, Any]) -> dict[str, tuple[int, float]]:
    return {row[0]: (int(row[1]), float(row[2])) for row in result["rows"]}


@pytest.fixture(scope="module")
def first(api: World) -> tuple[dict[str, Any], dict[str, Any]]:
    return _run(api, TOTALS.format(where=""))


def test_a_total_then_the_total_without_one_person_does_not_give_their_benefits(
    api: World, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    target = _target()
    truth = round(float(_joined().query("person_id == @target.person_id")["amount"].sum()), 2)
    _, before = first
    # Another operator of the same scope asks the second question: the ledger is the lineage's.
    job, after = _run(api, TOTALS.format(where=_where_after(target["birth_date"])), who="bob")
    was, now = _rows(before), _rows(after)
    district = str(target["district"])
    assert district in was
    # The attack: both cells released, and their difference is the person's benefits.
    learned = {
        d: round(was[d][1] - now[d][1], 2) for d in was.keys() & now.keys() if was[d][0] - now[d][0] == 1
    }
    assert truth not in learned.values(), "the cell without the oldest citizen was released"
    assert district not in now
    assert after["report"]["rows_withheld_by_ledger"] >= 1
    assert any(r.startswith("withheld: the units behind this row differ") for r in after["report"]["reasons"])
    # Replay decides the job's cells again against the ledger as it stood before it: the same rows.
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report


def _withheld_by_ledger(result: dict[str, Any]) -> int:
    return int(result["report"].get("rows_withheld_by_ledger") or 0)


def test_the_same_question_asked_again_is_released_in_full(
    api: World, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, before = first
    _, again = _run(api, TOTALS.format(where=""), who="bob")
    assert again["rows"] == before["rows"]
    assert _withheld_by_ledger(again) == 0


def test_a_cohort_differing_by_at_least_k_people_is_released(
    api: World, first: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    joined = _joined()
    women = joined[joined["sex"] == "F"].groupby("district")["person_id"].nunique()
    everyone = joined.groupby("district")["person_id"].nunique()
    expected = {d for d, n in women.items() if n >= K and everyone[d] - n >= K}
    _, result = _run(api, TOTALS.format(where="WHERE c.sex = 'F' "))
    assert {row[0] for row in result["rows"]} == expected
    assert {row[0]: row[1] for row in result["rows"]} == {d: int(women[d]) for d in expected}
    assert _withheld_by_ledger(result) == 0


def test_the_ledger_holds_across_a_gateway_restart(tmp_path: Path) -> None:
    """The first job on one gateway; the gateway stops; the second job on a new one, whose only memory is
    the database (the ledger's sealed batches) and whose domains derive their lineage keys again."""
    with _deployment(tmp_path) as before:
        _run(before, TOTALS.format(where=""))
    target = _target()
    with TestClient(create_app(before.settings, executor_factory=probe_executor)) as client:
        after = World(before.settings, client, before.tokens, before.scope_version, before.dataset_version)
        job, result = _run(after, TOTALS.format(where=_where_after(target["birth_date"])))
        assert str(target["district"]) not in {row[0] for row in result["rows"]}
        assert _withheld_by_ledger(result) >= 1
        assert replay(after, job["job_id"])["outcome"] == "match"


def test_a_new_version_without_one_person_does_not_give_their_benefits(tmp_path: Path) -> None:
    """The same question over two versions of the benefits: the second published without the target's
    payments (a person who left the programme between two monthly loads), after both domains rotated
    their KEKs. The two totals differ by that one person; the ledger compares cells across versions
    and rotations, as it does for single-domain cells."""
    target = _target()
    with _deployment(tmp_path) as api:
        _, before = _run(api, TOTALS.format(where=""))
        for domain in (DOMAIN, OTHER_DOMAIN):  # a KEK rotation between the loads changes nothing
            rotated = api.client.post(f"/v1/domains/{domain}/keys/rotate", headers=api.h("admin"))
            assert rotated.status_code == 200, rotated.text
        benefits = benefits_table()
        remaining = benefits.filter(pc.not_equal(benefits["person_id"], str(target["person_id"])))
        stored = upload(
            api.client,
            api.tokens["cleo"],
            manifest=BENEFITS_MANIFEST,
            files={BENEFITS: ("benefits.csv", csv_bytes(remaining), "text/csv")},
            domain=OTHER_DOMAIN,
            dataset=BENEFITS,
            reviewer=api.tokens["cass"],
        )
        assert stored.status_code == 201, stored.text
        job, after = _run(api, TOTALS.format(where=""), who="bob")
        district = str(target["district"])
        assert district in _rows(before)
        assert job["dataset_versions"][f"{OTHER_DOMAIN}/{BENEFITS}"] == stored.json()["version"]["version_id"]
        assert district not in _rows(after), "the total without the target was released from the new version"
        assert _withheld_by_ledger(after) >= 1
        assert replay(api, job["job_id"])["outcome"] == "match"


def test_each_round_carries_its_datasets_ledger_key_and_a_job_stored_before_replays_without(
    tmp_path: Path,
) -> None:
    """A job's party rounds carry their own dataset's ledger key (wrapped; one per dataset, the same
    for every version; made on first need for a dataset created before such keys). A job stored
    before such keys existed has no marker in its release facts: its replay derives the lineage keys
    from each version's data key, as the job did."""
    with cross_domain_world(tmp_path, _scope(), XD) as (probe, api):
        path = api.settings.state_dir / "metadata.db"
        with sqlite3.connect(path) as db:  # as a dataset created before ledger keys: made when needed
            db.execute("UPDATE datasets SET ledger_key = NULL WHERE domain = ?", (DOMAIN,))
        job, _ = _run(api, TOTALS.format(where=""))
        with sqlite3.connect(path) as db:
            (made,) = db.execute("SELECT ledger_key FROM datasets WHERE domain = ?", (DOMAIN,)).fetchone()
        assert made
        rounds = [s for s in probe.specs if s.job_id.startswith(job["job_id"] + "#") and s.party is not None]
        assert rounds
        keys = {(t.domain, t.dataset): t.ledger_key for s in rounds for t in s.tables}
        assert len(keys) == 2
        assert all(keys.values())
        assert len(set(keys.values())) == 2  # each dataset its own
        assert keys[(DOMAIN, DATASET)] == made
        with sqlite3.connect(path) as db:
            (facts,) = db.execute("SELECT release_facts FROM jobs WHERE id = ?", (job["job_id"],)).fetchone()
            stored = json.loads(facts)
            assert stored.pop("ledger_keys") == "dataset"
            db.execute("UPDATE jobs SET release_facts = ? WHERE id = ?", (json.dumps(stored), job["job_id"]))
        before = len(probe.specs)
        assert replay(api, job["job_id"])["outcome"] == "match"
        replayed = [s for s in probe.specs[before:] if s.party is not None]
        assert replayed
        assert not any(t.ledger_key for s in replayed for t in s.tables)
