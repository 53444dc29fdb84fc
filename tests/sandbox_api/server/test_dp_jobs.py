"""Differential privacy end to end through the API: the preview, a noised release whose report names
the mechanism, the budget charged and shown, exhaustion refused with 409, a failed job refunded, one
budget over every version of a scope, Python jobs withheld; every released job replays to a match
(the module's deployment checks that at the end).

Attack (the reason for all of it): the operator wants P-someone's income and subtracts two releases
that differ by one person. Under DP each released SUM carries noise whose scale the preview states
before the job runs; here the noise on the total is far larger than any one income can be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crypto.envelope import seal, unseal
from crypto.keyring import KeyProvider, LocalKeyring
from executors.base import Executor
from executors.local import LocalExecutor
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.services.settlement import dp_record_aad
from sandbox_api.server.settings import Settings
from sandbox_api.server.store.db import open_database
from sandbox_api.server.store.models import ResultRow
from tests.sandbox_api.api_helpers import DATASET, DISTRICTS, DOMAIN, World, citizens_table, world
from tests.sandbox_api.console_helpers import sign_in
from tests.sandbox_api.python_job_helpers import approve_scope, result_of, run_job, submit
from tests.sandbox_api.replay_helpers import replay_report, replayed_world
from tests.sandbox_api.server.test_job_control import GatedExecutor

DP_SCOPE = "flu-dp"
INCOME_HIGH = 150_000
COUNT_AND_TOTAL = "SELECT district, COUNT(*) AS n, SUM(income) AS total FROM citizens GROUP BY district"


def dp_scope_yaml(
    *, purpose: str = "Influenza burden by district, differentially private", sex_domain: str = ""
) -> str:
    public = f"      district: [{', '.join(DISTRICTS)}]\n" + (
        f"      sex: [{sex_domain}]\n" if sex_domain else ""
    )
    return f"""
scope: {DP_SCOPE}
purpose: "{purpose}"
grantees: [operator:alice, operator:bob]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      name: {{use: deny}}
      district: {{use: group}}
      sex: {{use: group}}
      income: {{use: aggregate, functions: [sum, avg, count], bounds: [0, {INCOME_HIGH}]}}
disclosure:
  min_units: 10
  suppression: drop
  max_rows: 1000
  dp:
    epsilon_per_job: 1.0
    budget: 2.5
    public_groups:
{public}python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
review: {{checkers: 1}}
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with replayed_world(tmp_path_factory.mktemp("state")) as deployment:
        approve_scope(deployment, dp_scope_yaml(), DP_SCOPE)
        yield deployment


def _check(api: World, sql: str, *, who: str) -> dict[str, Any]:
    answer = api.client.post("/v1/jobs/check", headers=api.h(who), json={"scope": DP_SCOPE, "sql": sql})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _exact() -> dict[str, tuple[int, float]]:
    frame = citizens_table().to_pandas()
    grouped = frame.groupby("district")["income"].agg(["count", "sum"])
    return {str(d): (int(row["count"]), float(row["sum"])) for d, row in grouped.iterrows()}


def test_the_dry_run_shows_the_cost_and_the_budget_left_without_running(api: World) -> None:
    check = _check(api, COUNT_AND_TOTAL, who="bob")
    assert check["allowed"], check["findings"]
    preview = check["dp"]
    assert (preview["epsilon"], preview["mechanism"]) == (1.0, "laplace")
    columns = {c["column"]: c for c in preview["columns"]}
    assert set(columns) == {"n", "total"}
    # Two noised columns share epsilon 1: each count moves by one person's one row, scale 1 / 0.5.
    assert columns["n"]["scale"] == pytest.approx(2.0)
    assert columns["total"]["scale"] == pytest.approx(INCOME_HIGH / 0.5)
    assert columns["total"]["half_width_95"] > INCOME_HIGH  # no single income survives the noise
    assert any("income" in c for c in preview["clamped"])
    assert check["budget_left"]["epsilon"] == pytest.approx(2.5)
    assert "LIMIT" not in check["rewritten_sql"]
    assert api.audit_events("dp.charged") == []  # a dry run spends nothing


def test_a_dp_job_is_released_with_noise_and_a_report_naming_the_mechanism(api: World) -> None:
    job = run_job(api, {"scope": DP_SCOPE, "sql": COUNT_AND_TOTAL})
    assert job["state"] == "released", job["reason"]
    result = result_of(api, job["job_id"])
    assert result["columns"] == ["district", "n", "total"]
    rows = {row[0]: (row[1], row[2]) for row in result["rows"]}
    assert sorted(rows) == sorted(DISTRICTS)  # the public domain: every district, 'Tiny' too
    exact = _exact()
    for district, (n, total) in rows.items():
        true_n, true_total = exact.get(district, (0, 0.0))
        assert n >= 0
        assert abs(n - true_n) <= 60  # scale 2: 30 scales out happens with probability ~e^-30
        assert abs(total - true_total) <= 30 * INCOME_HIGH / 0.5
    assert any(rows[d][1] != exact[d][1] for d in exact)  # continuous noise: never the exact total
    report = result["report"]
    assert report["differential_privacy"]["epsilon"] == 1.0
    assert any(r.startswith("n: laplace noise of scale 2") for r in report["reasons"])
    assert any("clamped" in r for r in report["reasons"])
    assert not any("distinct units" in r for r in report["reasons"])  # no k rule under DP
    charged = [e for e in api.audit_events("dp.charged") if e["details"]["job"] == job["job_id"]]
    assert len(charged) == 1
    receipt = api.client.get(f"/v1/jobs/{job['job_id']}/receipt", headers=api.h("alice"))
    assert receipt.status_code == 200, receipt.text
    signed = receipt.json()["suppression"]["differential_privacy"]
    assert (signed["epsilon"], signed["delta"], signed["mechanism"]) == (1.0, 0.0, "laplace")
    assert _check(api, COUNT_AND_TOTAL, who="alice")["budget_left"]["epsilon"] == pytest.approx(1.5)


def test_a_job_past_the_budget_is_refused_with_409_saying_what_is_left(api: World) -> None:
    second = run_job(api, {"scope": DP_SCOPE, "sql": "SELECT COUNT(*) AS n FROM citizens"})
    assert second["state"] == "released", second["reason"]
    refused = submit(api, {"scope": DP_SCOPE, "sql": "SELECT COUNT(*) AS n FROM citizens"})
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "dp-budget-exhausted"
    assert "epsilon 0.5 and delta 0 left" in problem["detail"]
    assert "never refreshes" in problem["detail"]
    assert api.audit_events("dp.refused")


def test_a_new_version_of_the_scope_shares_the_budget(api: World) -> None:
    before = _check(api, COUNT_AND_TOTAL, who="alice")["budget_left"]
    approve_scope(api, dp_scope_yaml(purpose="Influenza burden by district, DP, second version"), DP_SCOPE)
    after = _check(api, COUNT_AND_TOTAL, who="alice")["budget_left"]
    assert after == before
    assert after["epsilon"] == pytest.approx(0.5)
    assert submit(api, {"scope": DP_SCOPE, "sql": COUNT_AND_TOTAL}).status_code == 409


def test_the_submit_answer_and_the_job_say_what_it_spent_and_what_its_owner_has_left(api: World) -> None:
    """Bob has spent nothing yet: the answer to his submission already shows the charge and what is
    left after it; reading the job once released shows the same, to him and to an auditor, never in a
    listing. Ledger arithmetic only: the figures are the dry run's, which reads no data."""
    accepted = submit(api, {"scope": DP_SCOPE, "sql": COUNT_AND_TOTAL}, who="bob")
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()["dp_budget"]
    assert answer["scope"] == DP_SCOPE
    assert answer["spent"] == {"epsilon": pytest.approx(1.0), "delta": 0.0}
    assert answer["refunded"] is False
    assert answer["limit"]["epsilon"] == pytest.approx(2.5)
    assert answer["left"]["epsilon"] == pytest.approx(1.5)
    job_id = accepted.json()["job_id"]
    # The long-poll says it too (answered from the settling commit, which marks the job as charged).
    waited = api.client.get(f"/v1/jobs/{job_id}", headers=api.h("bob"), params={"wait": 30})
    assert waited.status_code == 200, waited.text
    assert waited.json()["dp_budget"] == answer
    finished = api.wait(job_id, who="bob")
    assert finished["state"] == "released", finished["reason"]
    assert finished["dp_budget"] == answer
    assert _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"] == answer["left"]
    audited = api.client.get(f"/v1/jobs/{job_id}", headers=api.h("audra"))
    assert audited.status_code == 200, audited.text
    assert audited.json()["dp_budget"] == answer
    # Alice's own budget is not bob's: his job is not hers to read, and her figure is her own.
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice")).status_code == 404
    listed = api.client.get("/v1/jobs", headers=api.h("bob")).json()["jobs"]
    assert all(j["dp_budget"] is None for j in listed)
    # The console's job page says the same, in words.
    page = sign_in(api.client, api.tokens["bob"]).get(api.client, f"/console/jobs/{job_id}").text
    shown = page.split('id="job-budget">', 1)[1].split("</dd>", 1)[0]
    assert "Spent by this job: ε 1." in shown
    assert "ε 1.5 / 2.5" in shown


def test_a_python_job_under_dp_waits_for_an_output_checker(api: World) -> None:
    code = "result = aggregate(citizens, by='district', aggs={'people': ('income', 'count')})"
    job = run_job(api, {"scope": DP_SCOPE, "kind": "python", "code": code}, who="bob")
    assert job["state"] == "withheld", job["reason"]
    # Nothing noised, nothing spent: a person decides.
    assert not [e for e in api.audit_events("dp.charged") if e["details"]["job"] == job["job_id"]]


def test_a_mock_job_under_dp_spends_nothing(api: World) -> None:
    before = _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"]
    job = run_job(api, {"scope": DP_SCOPE, "sql": COUNT_AND_TOTAL, "mode": "mock"}, who="bob")
    assert job["state"] == "released", job["reason"]
    assert result_of(api, job["job_id"], who="bob")["report"]["mock"] is True
    assert not [e for e in api.audit_events("dp.charged") if e["details"]["job"] == job["job_id"]]
    assert _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"] == before


def test_a_job_that_fails_gets_its_budget_back(api: World) -> None:
    """A public domain written with numbers for a text key fails the release (nothing is released)."""
    approve_scope(api, dp_scope_yaml(purpose="DP with a broken sex domain", sex_domain="1, 2"), DP_SCOPE)
    before = _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"]["epsilon"]
    job = run_job(
        api, {"scope": DP_SCOPE, "sql": "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex"}, who="bob"
    )
    assert job["state"] == "failed", job["reason"]
    assert "public group domain" in job["reason"]
    refunded = [e for e in api.audit_events("dp.refunded") if e["details"]["job"] == job["job_id"]]
    assert len(refunded) == 1
    assert _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"]["epsilon"] == pytest.approx(before)


def test_a_refunded_job_says_it_spent_nothing(api: World) -> None:
    refunded = [e["details"]["job"] for e in api.audit_events("dp.refunded")]
    assert refunded  # the failed job of the test above
    job = api.client.get(f"/v1/jobs/{refunded[-1]}", headers=api.h("bob")).json()
    assert job["state"] == "failed"
    assert job["dp_budget"]["refunded"] is True
    assert job["dp_budget"]["spent"] == {"epsilon": 0.0, "delta": 0.0}
    assert job["dp_budget"]["left"] == _check(api, COUNT_AND_TOTAL, who="bob")["budget_left"]


def test_a_job_that_spends_no_budget_shows_none(api: World) -> None:
    accepted = submit(api, {"scope": DP_SCOPE, "sql": COUNT_AND_TOTAL, "mode": "mock"}, who="bob")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["dp_budget"] is None
    assert api.wait(accepted.json()["job_id"], who="bob")["dp_budget"] is None


def test_the_auditor_replays_a_dp_job_to_its_receipt_without_new_noise(api: World) -> None:
    """The re-run's exact values equal the sealed ones and sealed exact + noise is the signed release."""
    released = [e["details"]["job"] for e in api.audit_events("dp.charged")]
    refunded = {e["details"]["job"] for e in api.audit_events("dp.refunded")}
    for job_id in [j for j in released if j not in refunded]:
        report = replay_report(api.client, api.h("audra"), job_id)
        assert report["outcome"] == "match", report


def test_the_python_client_shows_the_preview_and_the_budget_left(api: World) -> None:
    def forward(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = api.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers=dict(request.headers),
            content=request.content,
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    with SandboxClient(
        "http://gateway.test", api.tokens["bob"], transport=httpx.MockTransport(forward)
    ) as client:
        report = client.check_job(DP_SCOPE, COUNT_AND_TOTAL)
    assert report.dp is not None
    assert report.dp["epsilon"] == 1.0
    assert {c["column"] for c in report.dp["columns"]} == {"n", "total"}
    assert report.budget_left is not None
    assert report.budget_left["epsilon"] > 0


def test_replay_catches_a_sealed_record_whose_exact_values_were_changed(tmp_path: Path) -> None:
    """Attack: someone with the database and the results key wants a released count to look honest
    although it is not: they move one unit from the sealed noise to the sealed exact value (exact + noise
    still equals the release, so the receipt still matches). The auditor's re-run computes the exact
    values again and names the difference."""
    with world(tmp_path) as api:
        approve_scope(api, dp_scope_yaml(), DP_SCOPE)
        job = run_job(api, {"scope": DP_SCOPE, "sql": "SELECT COUNT(*) AS n FROM citizens"})
        assert job["state"] == "released", job["reason"]
        job_id = job["job_id"]
        assert replay_report(api.client, api.h("audra"), job_id)["outcome"] == "match"
        results_key = LocalKeyring.open(api.settings.keyring_path).secret("results")
        db = open_database(api.settings.resolved_database_url)
        with db.write() as session:
            stored = session.get(ResultRow, job_id)
            assert stored is not None
            assert stored.dp_sealed is not None
            record = json.loads(unseal(results_key, stored.dp_sealed, aad=dp_record_aad(job_id)))
            record["exact"]["n"][0] += 1
            record["noise"]["n"][0] -= 1
            stored.dp_sealed = seal(results_key, json.dumps(record).encode(), aad=dp_record_aad(job_id))
        report = replay_report(api.client, api.h("audra"), job_id)
        assert report["outcome"] == "mismatch"
        assert "n: the re-run's exact values differ from the sealed ones" in json.dumps(report)


def test_cancelled_jobs_queued_or_running_get_their_budget_back(tmp_path: Path) -> None:
    holder: list[GatedExecutor] = []

    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        holder.append(GatedExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        return holder[0]

    with world(tmp_path, executor_factory=factory, max_concurrent_jobs=1) as api:
        approve_scope(api, dp_scope_yaml(), DP_SCOPE)
        executor = holder[0]
        body = {"scope": DP_SCOPE, "sql": "SELECT COUNT(*) AS n FROM citizens"}
        running = submit(api, body).json()["job_id"]
        assert executor.waiting.acquire(timeout=10)  # holds the only worker
        queued = submit(api, body).json()["job_id"]
        assert _check(api, COUNT_AND_TOTAL, who="alice")["budget_left"]["epsilon"] == pytest.approx(0.5)
        for job_id in (queued, running):
            assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("alice")).status_code == 200
            assert api.wait(job_id)["state"] == "cancelled"
        refunded = {e["details"]["job"] for e in api.audit_events("dp.refunded")}
        assert refunded == {queued, running}
        assert _check(api, COUNT_AND_TOTAL, who="alice")["budget_left"]["epsilon"] == pytest.approx(2.5)
