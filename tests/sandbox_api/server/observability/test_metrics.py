"""Prometheus metrics: what a scrape says after real jobs, who may scrape, the loopback port, off.

On both stores: the gauges are queries on the metadata database."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sandbox_api.server.app import create_app
from sandbox_api.server.store.models import DpLedgerRow
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, make_settings
from tests.sandbox_api.python_job_helpers import PY_ONE, ensure_python_world, run_job
from tests.sandbox_api.server.observability.conftest import Observed
from tests.sandbox_api.stores import on_both_stores

store = on_both_stores

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: World, who: str = "audra") -> Samples:
    answer = api.client.get("/metrics", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_released_job_shows_in_states_phases_and_settled_counts(observed: Observed) -> None:
    api = observed.api
    before = scrape(api)
    job = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL}).json()
    assert api.wait(job["job_id"])["state"] == "released"
    after = scrape(api)
    released = ("sandbox_jobs", {"state": "released", "kind": "sql"})
    assert value(after, released[0], **released[1]) == value(before, released[0], **released[1]) + 1
    assert value(after, "sandbox_queue_depth") == 0
    assert value(after, "sandbox_jobs_settled_total", state="released", kind="sql") == (
        value(before, "sandbox_jobs_settled_total", state="released", kind="sql") + 1
    )
    for phase in ("queue", "load", "query", "execute", "check", "total"):
        count = "sandbox_job_phase_seconds_count"
        assert (
            value(after, count, phase=phase, kind="sql") == value(before, count, phase=phase, kind="sql") + 1
        )
    # The setting's one warm sandbox: ready, or being replaced after this job took the last one.
    assert ("sandbox_sandboxes_ready", ()) in after
    assert after[("sandbox_sandboxes_ready", ())] in (0.0, 1.0)


def test_a_rejected_job_counts_once_for_each_rule_that_refused_it(observed: Observed) -> None:
    api = observed.api
    before = scrape(api)
    refused = api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": "SELECT name FROM citizens"}
    )
    assert refused.status_code == 422
    rules = [finding["rule"] for finding in refused.json()["findings"]]
    assert rules
    after = scrape(api)
    for rule in set(rules):
        expected = value(before, "sandbox_rejections_total", rule=rule) + rules.count(rule)
        assert value(after, "sandbox_rejections_total", rule=rule) == expected
    assert value(after, "sandbox_jobs", state="rejected", kind="sql") == (
        value(before, "sandbox_jobs", state="rejected", kind="sql") + 1
    )


def test_budget_spent_is_read_from_the_ledger_per_scope(observed: Observed) -> None:
    api = observed.api
    services = api.client.app.state.services  # type: ignore[attr-defined]
    with services.db.write() as session:
        for grantee, epsilon in (("alice", 500_000_000), ("bob", 250_000_000)):
            session.add(
                DpLedgerRow(
                    lineage="f" * 64,
                    scope_name="dp-metrics",
                    datasets=["health-bureau/citizens"],
                    grantee=grantee,
                    period=0,
                    spent_epsilon=epsilon,
                    spent_delta=10**8,
                )
            )
    samples = scrape(api)
    assert value(samples, "sandbox_dp_budget_spent_epsilon", scope="dp-metrics") == 0.75
    assert value(samples, "sandbox_dp_budget_spent_delta", scope="dp-metrics") == 2e-10


def test_requests_are_counted_by_route_template_and_no_id_reaches_a_label(observed: Observed) -> None:
    api = observed.api
    job = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL}).json()
    api.wait(job["job_id"])
    text = api.client.get("/metrics", headers=api.h("admin")).text
    assert job["job_id"] not in text
    samples = parse(text)
    assert (
        value(samples, "sandbox_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200")
        >= 1
    )
    assert value(samples, "sandbox_http_requests_total", method="POST", route="/v1/jobs", status="202") >= 1


def test_the_loopback_port_serves_the_same_metrics_without_a_token(observed: Observed) -> None:
    answer = httpx.get(f"http://127.0.0.1:{observed.metrics_port}/metrics", timeout=10)
    assert answer.status_code == 200
    assert "sandbox_queue_depth" in answer.text
    assert "sandbox_jobs{" in answer.text


def test_metrics_off_collects_nothing_and_the_route_answers_404(observed: Observed) -> None:
    settings = make_settings(
        observed.api.settings.state_dir,
        database_url=observed.api.settings.database_url,
        metrics_enabled=False,
        warm_sandboxes=0,
    )
    app = create_app(settings)  # not started: the route answers without the runner
    services = app.state.services
    try:
        assert services.observability.metrics is None
        client = TestClient(app)
        answer = client.get("/metrics", headers=observed.api.h("admin"))
        assert answer.status_code == 404
        assert answer.json()["code"] == "not-found"
        assert "metrics_enabled" in answer.json()["detail"]
    finally:
        services.runner.executor.close()
        services.db.dispose()


def test_a_withheld_job_counts_when_withheld_and_again_when_a_review_releases_it(observed: Observed) -> None:
    api = observed.api
    ensure_python_world(api)
    before = scrape(api)
    job = run_job(
        api, {"scope": PY_ONE, "kind": "python", "code": "result = float(citizens['income'].max())"}
    )
    assert job["state"] == "withheld", job["reason"]
    held = scrape(api)
    total = "sandbox_job_phase_seconds_count"
    assert value(held, "sandbox_jobs_settled_total", state="withheld", kind="python") == (
        value(before, "sandbox_jobs_settled_total", state="withheld", kind="python") + 1
    )
    assert (
        value(held, total, phase="total", kind="python")
        == value(before, total, phase="total", kind="python") + 1
    )
    released = api.client.post(
        f"/v1/reviews/{job['job_id']}/release", headers=api.h("chad"), json={"reason": "one maximum, checked"}
    )
    assert released.status_code == 200, released.text
    after = scrape(api)
    assert value(after, "sandbox_jobs_settled_total", state="released", kind="python") == (
        value(held, "sandbox_jobs_settled_total", state="released", kind="python") + 1
    )
    # The review added no phases: the job's time was measured once, when the runner settled it.
    assert value(after, total, phase="total", kind="python") == value(
        held, total, phase="total", kind="python"
    )
    assert value(after, total, phase="execute", kind="python") == value(
        held, total, phase="execute", kind="python"
    )
