"""Replay: a released job runs again from its receipt's records to the same canonical result hash."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pytest

from sandbox_api.client.verify import verify_receipt
from tests.sandbox_api.api_helpers import DATASET, DOMAIN, SCOPE, World, csv_bytes, upload
from tests.sandbox_api.auditing_helpers import receipt_of, release, replay, result_of, trusted_keys
from tests.sandbox_api.python_job_helpers import PY_ONE, approve_scope, ensure_python_world, run_job

MASKED_SQL = (
    "SELECT sex, birth_date, COUNT(DISTINCT person_id) AS people, AVG(income) AS avg_income "
    "FROM citizens GROUP BY sex, birth_date"
)
TWO = "citizens-and-visits"  # a scope over two datasets, like the demo's flu-study-2026
VISITS_MANIFEST = {
    "tables": [
        {
            "name": "visits",
            "unit": "person_id",
            "columns": [
                {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                {"name": "diagnosis", "type": "VARCHAR", "class": "sensitive"},
            ],
        }
    ]
}


def _visits(n: int = 3000, *, people: int = 1500, seed: int = 11) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "person_id": [f"P{rng.randrange(people):07d}" for _ in range(n)],
            "diagnosis": [rng.choice(["flu", "cold", "asthma"]) for _ in range(n)],
        }
    )


def _two_dataset_scope() -> str:
    return f"""
scope: {TWO}
purpose: "Visits by sex"
grantees: [operator:alice]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      sex: {{use: group}}
      district: {{use: group}}
  {DOMAIN}/visits:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      diagnosis: {{use: group}}
disclosure:
  min_units: 10
  suppression: drop
  max_rows: 1000
"""


@pytest.fixture(scope="module")
def two(api: World) -> str:
    """A second dataset and a scope that names both (the world's citizens and these visits)."""
    made = api.client.post("/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": "visits"})
    assert made.status_code == 201, made.text
    stored = upload(
        api.client,
        api.tokens["stu"],
        manifest=VISITS_MANIFEST,
        dataset="visits",
        files={"visits": ("visits.csv", csv_bytes(_visits()), "text/csv")},
        reviewer=api.tokens["sam"],
    )
    assert stored.status_code == 201, stored.text
    approve_scope(api, _two_dataset_scope(), TWO)
    return TWO


def test_a_replay_matches_the_receipt(api: World) -> None:
    job_id = release(api, MASKED_SQL)
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    assert report["match"] is True
    assert report["mismatches"] == []
    assert (
        report["actual_result_hash"]
        == report["expected_result_hash"]
        == receipt_of(api, job_id)["result"]["hash"]
    )
    assert report["replayed_by"] == "audra"
    assert "duckdb" in report["engine"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex",
        "SELECT diagnosis, COUNT(DISTINCT person_id) AS n FROM visits GROUP BY diagnosis",
        "SELECT c.sex, v.diagnosis, COUNT(DISTINCT c.person_id) AS n "
        "FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY c.sex, v.diagnosis",
    ],
    ids=["citizens-only", "visits-only", "both"],
)
def test_a_job_reading_some_of_its_scopes_datasets_replays_to_a_match(api: World, two: str, sql: str) -> None:
    """The auditor's false alarm of issue 20: a job that read only one of its scope's two datasets
    replayed as "mismatch: the recorded query no longer passes the scope (scope_unknown_dataset)"."""
    job_id = release(api, sql, scope=two)
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    assert report["kind"] is None


@contextmanager
def _edited(api: World, table: str, column: str, key: str, value: str, new: str | None) -> Iterator[None]:
    """``column`` of one row of ``table`` set to ``new`` in the database, then restored."""
    path = api.settings.state_dir / "metadata.db"
    with sqlite3.connect(path) as db:
        (old,) = db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (value,)).fetchone()
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new, value))
    try:
        yield
    finally:
        with sqlite3.connect(path) as db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (old, value))


def test_an_altered_stored_result_is_a_release_that_differs(api: World) -> None:
    job_id = release(api, MASKED_SQL)
    forged = "0" * 64
    with _edited(api, "results", "result_hash", "job_id", job_id, forged):
        report = replay(api, job_id)
    assert report["outcome"] == "mismatch"
    assert report["kind"] == "release-differs"
    assert [(m["field"], m["kind"]) for m in report["mismatches"]] == [
        ("result.stored_hash", "release-differs")
    ]
    assert "the release differs from what replay computes" in report["message"]
    assert f"the stored result's hash {forged} is not the signed" in report["message"]
    events = [e for e in api.audit_events("job.replayed") if e["details"]["job"] == job_id]
    assert events[-1]["details"]["kind"] == "release-differs"


def test_a_catalog_version_gone_from_the_catalog_is_context_unavailable_and_named(
    api: World, two: str
) -> None:
    """The job read citizens only; the visits version its scope was checked against (recorded and
    signed) is no longer in the catalog: replay says it could not rebuild that, not that the release
    differs."""
    job_id = release(api, "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex", scope=two)
    signed = receipt_of(api, job_id)["scope"]["catalog"]
    visits = signed[f"{DOMAIN}/visits"]
    with sqlite3.connect(api.settings.state_dir / "metadata.db") as db:
        (row_id,) = db.execute("SELECT id FROM dataset_versions WHERE version_id = ?", (visits,)).fetchone()
    with _edited(api, "dataset_versions", "version_id", "id", str(row_id), "f" * 64):
        report = replay(api, job_id)
    assert report["outcome"] == "mismatch"
    assert report["kind"] == "context-unavailable"
    assert [(m["field"], m["kind"]) for m in report["mismatches"]] == [
        (f"catalog.{DOMAIN}/visits", "context-unavailable")
    ]
    assert "replay could not rebuild the context the job ran under" in report["message"]
    assert f"version {visits} of {DOMAIN}/visits" in report["message"]
    assert "the release differs" not in report["message"]
    assert replay(api, job_id)["outcome"] == "match"  # restored


def test_the_receipt_signs_the_catalog_the_job_was_checked_against(api: World, two: str) -> None:
    job_id = release(api, "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex", scope=two)
    signed = receipt_of(api, job_id)["scope"]["catalog"]
    assert set(signed) == {f"{DOMAIN}/{DATASET}", f"{DOMAIN}/visits"}  # read or not


def test_an_edited_catalog_record_is_a_release_that_differs_and_the_lacking_dataset_is_named(
    api: World, two: str
) -> None:
    """What replay reported as "the recorded query no longer passes the scope" before it rebuilt the
    whole catalog: the edited record contradicts the signed receipt (an incident), and the dataset it
    lacks is named as what replay could not rebuild."""
    job_id = release(api, "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex", scope=two)
    with _edited(api, "jobs", "catalog_versions", "id", job_id, "{}"):
        report = replay(api, job_id)
    assert report["kind"] == "release-differs", report
    assert [(m["field"], m["kind"]) for m in report["mismatches"]] == [
        ("scope.catalog", "release-differs"),
        (f"catalog.{DOMAIN}/visits", "context-unavailable"),
    ]
    assert "is not the one its receipt signed" in report["message"]
    assert f"names no version of {DOMAIN}/visits, a dataset its scope names" in report["message"]


def test_a_job_without_a_recorded_catalog_replays_on_the_current_versions(api: World, two: str) -> None:
    """A job stored before jobs recorded their catalog is rebuilt on the current versions of the
    datasets it did not read, with a note; here the record was removed from a job whose receipt signs
    it, so replay also says the record was edited, while the replayed bytes still match."""
    job_id = release(api, "SELECT diagnosis, COUNT(*) AS n FROM visits GROUP BY diagnosis", scope=two)
    with _edited(api, "jobs", "catalog_versions", "id", job_id, None):
        report = replay(api, job_id)
    assert [m["field"] for m in report["mismatches"]] == ["scope.catalog"], report
    assert report["actual_result_hash"] == report["expected_result_hash"]
    (note,) = [n for n in report["notes"] if "before jobs recorded their catalog" in n]
    assert f"{DOMAIN}/{DATASET}" in note  # the dataset it did not read, rebuilt at its current version


AGGREGATE = "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})"
MODEL = """
import numpy as np
x = citizens['birth_date'].astype(str).str[:4].astype(float).to_numpy()
y = citizens['income'].to_numpy()
slope, intercept = np.polyfit(x, y, 1)
result = {'slope': float(slope), 'intercept': float(intercept), 'n': int(len(x))}
"""


def test_a_python_aggregate_released_automatically_replays_to_a_match(api: World) -> None:
    ensure_python_world(api)
    job = run_job(api, {"scope": PY_ONE, "kind": "python", "code": AGGREGATE})
    assert job["state"] == "released", job["reason"]
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report
    assert receipt_of(api, job["job_id"])["result"]["output_sha256"]  # the output object was compared


def test_a_python_output_released_by_a_checker_replays_to_the_reviewed_payload(api: World) -> None:
    ensure_python_world(api)
    job = run_job(api, {"scope": PY_ONE, "kind": "python", "code": MODEL})
    assert job["state"] == "withheld", job["reason"]
    released = api.client.post(
        f"/v1/reviews/{job['job_id']}/release", headers=api.h("chad"), json={"reason": "coefficients"}
    )
    assert released.status_code == 200, released.text
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report
    assert report["actual_result_hash"] == receipt_of(api, job["job_id"])["result"]["hash"]
    assert any("released by output checker(s) chad after review" in n for n in report["notes"])


@pytest.mark.parametrize(
    "body",
    [
        {"sql": "SELECT person_id, district, income FROM citizens", "mode": "mock"},
        {"kind": "python", "code": "result = citizens.head(5)", "mode": "mock"},
    ],
    ids=["sql", "python"],
)
def test_a_mock_job_replays_on_the_same_twins(api: World, body: dict[str, str]) -> None:
    """Twins are generated from the version id and the declared schema, so a mock release replays too:
    it proves the operator received synthetic rows, generated without any data key."""
    ensure_python_world(api)
    job = run_job(api, {"scope": PY_ONE, **body})
    assert (job["state"], job["mode"]) == ("released", "mock"), job["reason"]
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report


def test_replays_are_audited_with_their_outcome(api: World) -> None:
    job_id = release(api)
    replay(api, job_id)
    events = [e for e in api.audit_events("job.replayed") if e["details"]["job"] == job_id]
    assert len(events) == 1
    assert events[0]["actor"] == "audra"
    assert events[0]["details"]["outcome"] == "match"
    assert events[0]["details"]["actual_result_hash"] == events[0]["details"]["expected_result_hash"]


def test_only_auditors_replay_and_refusals_are_audited(api: World) -> None:
    job_id = release(api)
    for who in ("alice", "admin", "olga"):
        answer = api.client.post(f"/v1/jobs/{job_id}/replay", headers=api.h(who))
        assert answer.status_code == 403, answer.text
    denied = [
        e for e in api.audit_events("request.denied") if e["details"].get("path", "").endswith("/replay")
    ]
    assert {e["actor"] for e in denied} >= {"alice", "admin", "olga"}


def test_a_job_without_a_receipt_cannot_be_replayed(api: World) -> None:
    answer = api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": "SELECT name FROM citizens"}
    )
    assert answer.status_code == 422
    rejected = answer.json()["job_id"]
    refused = api.client.post(f"/v1/jobs/{rejected}/replay", headers=api.h("audra"))
    assert refused.status_code == 409
    assert "only a released job with a receipt" in refused.json()["detail"]
    missing = api.client.post("/v1/jobs/nope/replay", headers=api.h("audra"))
    assert missing.status_code == 404


def test_replay_and_receipts_survive_kek_and_signing_key_rotation(api: World) -> None:
    before = release(api, MASKED_SQL)
    old_receipt = receipt_of(api, before)
    rotated = api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin"))
    assert rotated.status_code == 200, rotated.text
    signing = api.client.post("/v1/keys/signing/rotate", headers=api.h("admin"))
    assert signing.status_code == 200, signing.text
    assert signing.json()["retired"] == old_receipt["kid"]

    keys = trusted_keys(api)
    assert keys[old_receipt["kid"]].not_after is not None  # retired, still published
    verify_receipt(old_receipt, keys, result=result_of(api, before))
    assert replay(api, before)["outcome"] == "match"

    after = release(api, MASKED_SQL)
    new_receipt = receipt_of(api, after)
    assert new_receipt["kid"] == signing.json()["kid"] != old_receipt["kid"]
    assert new_receipt["result"]["hash"] == old_receipt["result"]["hash"]
    verify_receipt(new_receipt, keys, result=result_of(api, after))
    assert replay(api, after)["outcome"] == "match"
    rotations = api.audit_events("signing_key.rotated")
    assert rotations[-1]["actor"] == "admin"
    assert rotations[-1]["details"]["kid"] == new_receipt["kid"]


def test_only_admins_rotate_the_signing_key(api: World) -> None:
    for who in ("audra", "alice", "stu"):
        assert api.client.post("/v1/keys/signing/rotate", headers=api.h(who)).status_code == 403
