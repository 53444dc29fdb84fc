"""Differential privacy on cross-domain jobs through the API: the dry run's preview, the budget charged
at submit and refunded when a round fails, each domain bounding its own rows, the gateway's rebuilt
cells noised by the one release function, keys chosen by partition selection rather than by an exact
count, the report, and replay to the released bytes (the module's deployment replays every released job
at its end).

Attack (why): without noise, two cross-domain jobs that differ by one person (a filter on one side)
give that person's payments by subtraction; and a cell shown only when its exact count reaches
``min_units`` says that count is at least ``min_units``. Under DP the cells carry noise scaled to what
one person can move them, and keys pass a noisy threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from executors.crossdomain import wire
from executors.crossdomain.messages import ShareSumRequest
from tests.sandbox_api.api_helpers import (
    DATASET,
    DISTRICTS,
    DOMAIN,
    OTHER_DOMAIN,
    World,
    citizens_table,
)
from tests.sandbox_api.auditing_helpers import receipt_of, replay, result_of
from tests.sandbox_api.cross_domain_helpers import BENEFITS, Probe, benefits_table, cross_domain_world
from tests.sandbox_api.python_job_helpers import approve_scope

XD_DP = "benefits-by-district-dp"
AMOUNT_HIGH = 5000
BENEFIT_ROWS = 3  # dp.max_rows_per_unit for benefits; citizens keep one row (the default)
SQL = (
    "SELECT c.district AS district, COUNT(DISTINCT c.person_id) AS people, COUNT(*) AS payments, "
    "SUM(b.amount) AS total FROM citizens AS c JOIN benefits AS b ON c.person_id = b.person_id "
    "GROUP BY c.district"
)
BY_SEX = (
    "SELECT c.sex AS sex, COUNT(DISTINCT c.person_id) AS people FROM citizens AS c "
    "JOIN benefits AS b ON c.person_id = b.person_id GROUP BY c.sex"
)


def _scope(
    *, name: str = XD_DP, benefit_rows: int = BENEFIT_ROWS, citizen_rows: int = 1, public: bool = True
) -> str:
    groups = (
        f"""    public_groups:
      district: [{", ".join(DISTRICTS)}]
"""
        if public
        else ""
    )
    return f"""
scope: {name}
purpose: "Benefit payments by district, differentially private"
grantees: [operator:alice]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
      sex: {{use: group}}
  {OTHER_DOMAIN}/{BENEFITS}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      amount: {{use: aggregate, functions: [sum, avg, count], bounds: [0, {AMOUNT_HIGH}]}}
disclosure:
  min_units: 10
  suppression: drop
  max_rows: 1000
  dp:
    epsilon_per_job: 1.0
    budget: 5.0
    delta: 1.0e-8
    max_rows_per_unit: {{{BENEFITS}: {benefit_rows}, citizens: {citizen_rows}}}
{groups}"""


@pytest.fixture(scope="module")
def probe_and_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Probe, World]]:
    with cross_domain_world(tmp_path_factory.mktemp("state"), _scope(), XD_DP) as probe_and_world:
        yield probe_and_world


def _check(api: World, sql: str = SQL, *, scope: str = XD_DP) -> dict[str, Any]:
    answer = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": scope, "kind": "cross-domain", "sql": sql}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _submit(api: World, sql: str = SQL, *, scope: str = XD_DP) -> Any:
    return api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": scope, "kind": "cross-domain", "sql": sql}
    )


@pytest.fixture(scope="module")
def released(probe_and_api: tuple[Probe, World]) -> dict[str, Any]:
    _, api = probe_and_api
    answer = _submit(api)
    assert answer.status_code == 202, answer.text
    assert answer.json()["dp_budget"]["spent"]["epsilon"] == pytest.approx(1.0)
    job = api.wait(answer.json()["job_id"])
    assert job["state"] == "released", job["reason"]
    return job


def test_the_dry_run_shows_epsilon_the_budget_left_and_each_columns_noise(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    check = _check(api)
    assert check["allowed"] is True, check["findings"]
    assert "cross_domain_split" in check["applied"]
    preview = check["dp"]
    assert (preview["epsilon"], preview["mechanism"]) == (1.0, "laplace")
    columns = {c["column"]: c for c in preview["columns"]}
    assert set(columns) == {"people", "payments", "total"}
    # Three noised columns share epsilon 1; one person has one citizen row and at most three benefit
    # rows, so reaches at most 1 x 3 joined rows: the product of both sides' bounds.
    share = 1.0 / 3
    assert columns["payments"]["scale"] == pytest.approx(BENEFIT_ROWS / share)
    assert columns["total"]["scale"] == pytest.approx(BENEFIT_ROWS * AMOUNT_HIGH / share)
    assert columns["people"]["scale"] == pytest.approx(BENEFIT_ROWS / share)
    assert all(c["half_width_95"] > c["scale"] for c in columns.values())
    assert any("amount" in c for c in preview["clamped"])
    assert check["budget_left"]["epsilon"] == pytest.approx(5.0)


def test_the_job_is_charged_at_submit_and_released_with_noise_on_every_cell(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    probe, api = probe_and_api
    charged = [e for e in api.audit_events("dp.charged") if e["details"]["job"] == released["job_id"]]
    assert len(charged) == 1
    result = result_of(api, released["job_id"])
    assert result["columns"] == ["district", "people", "payments", "total"]  # no _sbx_units
    rows = {row[0]: row[1:] for row in result["rows"]}
    assert sorted(rows) == sorted(DISTRICTS)  # the public domain, 'Tiny' (one citizen) included
    citizens = citizens_table().to_pandas()
    joined = benefits_table().to_pandas().merge(citizens, on="person_id")
    people = joined.groupby("district")["person_id"].nunique()
    scale = BENEFIT_ROWS * 3
    for district, (n_people, payments, total) in rows.items():
        assert abs(n_people - int(people.get(district, 0))) <= 30 * scale  # e^-30: never by chance
        assert payments >= 0
        assert n_people >= 0
        assert isinstance(total, float)
    report = result["report"]
    assert report["differential_privacy"]["epsilon"] == 1.0
    assert set(report["differential_privacy"]["columns"]) == {"people", "payments", "total"}
    assert any(r.startswith("total: laplace noise of scale 45000") for r in report["reasons"])
    assert any("clamped" in r and "amount" in r for r in report["reasons"])
    # Each domain's part bounded its own rows before anything left it; the gateway summed every cell.
    rounds = [s for s in probe.specs if s.job_id.startswith(released["job_id"] + "#")]
    blind = [s for s in rounds if s.party is not None and s.party.step.value == "blind"]
    assert len(blind) == 2
    benefits_part = next(s for s in blind if s.tables[0].domain == OTHER_DOMAIN)
    assert "ROW_NUMBER()" in benefits_part.sql
    # The rows bound ranks the people above it and keeps rows numbered BETWEEN 1 AND 3 (``<= 3`` in
    # meaning; written so that DuckDB sorts rather than building a per-person top-n).
    assert "BETWEEN 1 AND 3" in benefits_part.sql
    assert "$sbx_dp_key" in benefits_part.sql
    assert "sbx_dp_key" in benefits_part.parameters
    # The share-sum request names every matched cell, those below min_units too: the gateway's
    # threshold under DP is 1, and the release decides what appears.
    (answer,) = [s for s in rounds if s.party is not None and s.party.step.value == "answer"]
    request = wire.decode(answer.party.incoming)
    assert isinstance(request, ShareSumRequest)
    assert len(request.cells) == len(people)
    assert (people < 10).any()  # a district below min_units was summed for the noise


def test_the_receipt_signs_the_charge_and_replay_reproduces_the_released_bytes(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    _, api = probe_and_api
    receipt = receipt_of(api, released["job_id"])
    signed = receipt["suppression"]["differential_privacy"]
    assert (signed["epsilon"], signed["mechanism"]) == (1.0, "laplace")
    report = replay(api, released["job_id"])
    assert report["outcome"] == "match", report
    assert report["expected_result_hash"] == report["actual_result_hash"] == released["result_hash"]


def test_a_round_that_fails_gives_the_budget_back(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    probe, api = probe_and_api
    before = _check(api)["budget_left"]["epsilon"]
    with probe.lock:
        probe.failing = True
    try:
        answer = _submit(api)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        job = api.wait(job_id)
    finally:
        with probe.lock:
            probe.failing = False
    assert job["state"] == "failed", job
    refunded = [e for e in api.audit_events("dp.refunded") if e["details"]["job"] == job_id]
    assert len(refunded) == 1
    assert job["dp_budget"]["refunded"] is True
    assert _check(api)["budget_left"]["epsilon"] == pytest.approx(before)


def test_keys_from_the_data_pass_a_noisy_threshold_not_an_exact_count(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    check = _check(api, BY_SEX)
    assert check["allowed"] is True, check["findings"]
    assert check["dp"]["key_selection"]["threshold"] > 1
    job = api.wait(_submit(api, BY_SEX).json()["job_id"])
    assert job["state"] == "released", job["reason"]
    result = result_of(api, job["job_id"])
    assert result["columns"] == ["sex", "people"]
    assert {row[0] for row in result["rows"]} <= {"F", "M"}
    reasons = result["report"]["reasons"]
    assert any("noisy count of distinct units" in r for r in reasons)
    assert not any("min_units" in r for r in reasons)


def test_keys_from_the_data_are_chosen_before_any_domain_is_asked_for_a_sum(
    probe_and_api: tuple[Probe, World],
) -> None:
    """Without a public domain for district, the gateway draws OpenDP's noisy threshold on each cell's
    matched people before the share-sum round: the domain that answers is asked for the released
    cells only (never for Tiny's or Harbour's small cells), and replay sums the same cells again."""
    probe, api = probe_and_api
    approve_scope(api, _scope(name="xd-dp-keys", public=False), "xd-dp-keys")
    sql = (
        "SELECT c.district AS district, SUM(b.amount) AS total FROM citizens AS c JOIN benefits AS b "
        "ON c.person_id = b.person_id GROUP BY c.district"
    )
    job = api.wait(_submit(api, sql, scope="xd-dp-keys").json()["job_id"])
    assert job["state"] == "released", job["reason"]
    rows = result_of(api, job["job_id"])["rows"]
    assert rows  # the large districts pass the threshold
    assert "Tiny" not in {row[0] for row in rows}
    rounds = [s for s in probe.specs if s.job_id.startswith(job["job_id"] + "#")]
    (answer,) = [s for s in rounds if s.party is not None and s.party.step.value == "answer"]
    request = wire.decode(answer.party.incoming)
    assert isinstance(request, ShareSumRequest)
    assert len(request.cells) == len(rows)
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report


def test_what_dp_cannot_bound_across_domains_is_refused_before_anything_runs(
    probe_and_api: tuple[Probe, World],
) -> None:
    """COUNT(*) and SUM over a join where both sides keep several rows per person would be checked
    on the rows at run time; a run failing on one person's rows would tell that they are there."""
    _, api = probe_and_api
    approve_scope(api, _scope(name="xd-dp-many", citizen_rows=2), "xd-dp-many")
    answer = _submit(api, scope="xd-dp-many")
    assert answer.status_code == 422, answer.text
    findings = answer.json()["findings"]
    assert {f["fragment"] for f in findings} == {"payments", "total"}
    assert all("one row per person" in f["message"] for f in findings)
    counts = (
        "SELECT c.district AS district, COUNT(DISTINCT c.person_id) AS people " + SQL.split("AS total ", 1)[1]
    )
    assert _submit(api, counts, scope="xd-dp-many").status_code == 202
