"""Alerts on unusual use, live: refusals and near-identical queries raise alerts that name their
evidence, reach auditors through the API and a webhook, are audited, suspend the operator when the
deployment says so (an admin lifts it), and are acknowledged with a note."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, scope_yaml, world
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

DENIED_SQL = "SELECT name, COUNT(*) AS n FROM citizens GROUP BY name"  # name is denied: rejected


class Webhook:
    """A loopback HTTP server that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        failing: list[bool] = [False]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(500 if failing[0] else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.received = received
        self.failing = failing
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook, store: NewStore) -> Iterator[World]:
    with world(
        tmp_path_factory.mktemp("alerts"),
        database_url=store(),
        alerts_refusals=3,
        alerts_near_identical=3,
        alerts_download_rows=5,
        alerts_webhook_url=webhook.url,
        alerts_suspend=True,
    ) as deployment:
        yield deployment


def settled(api: World) -> None:
    assert api.client.app.state.services.alerts.wait_idle(30)  # type: ignore[attr-defined]


def alerts(api: World, rule: str) -> list[dict[str, Any]]:
    answer = api.client.get("/v1/alerts", headers=api.h("audra"))
    assert answer.status_code == 200, answer.text
    return [a for a in answer.json() if a["rule"] == rule]


def submit(api: World, sql: str) -> str:
    answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": sql})
    assert answer.status_code in {202, 422}, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


def reinstate(api: World) -> None:
    assert api.client.post("/v1/principals/alice/enable", headers=api.h("admin")).status_code == 200


def test_a_burst_of_refusals_alerts_auditors_with_its_evidence_and_suspends_the_operator(
    watched: World, webhook: Webhook
) -> None:
    rejected = [submit(watched, DENIED_SQL) for _ in range(2)]
    settled(watched)
    assert alerts(watched, "refusal_burst") == []  # below the threshold
    rejected.append(submit(watched, DENIED_SQL))
    settled(watched)
    [alert] = alerts(watched, "refusal_burst")
    assert set(alert["evidence"]["jobs"]) == set(rejected)
    assert (alert["operator"], alert["scope"], alert["state"], alert["suspended"]) == (
        "alice",
        SCOPE,
        "open",
        True,
    )
    [raised] = [e for e in watched.audit_events("alert.raised") if e["details"]["alert"] == alert["id"]]
    assert set(raised["details"]["jobs"]) == set(rejected)
    [posted] = [body for body in webhook.received if body["id"] == alert["id"]]
    assert (posted["type"], posted["rule"], posted["evidence"]) == (
        "data-sandbox/alert",
        alert["rule"],
        alert["evidence"],
    )
    # Suspended pending review: no token of the operator works until an admin enables them again.
    assert watched.client.get("/v1/whoami", headers=watched.h("alice")).status_code == 401
    [disabled] = [
        e for e in watched.audit_events("principal.disabled") if e["details"]["principal"] == "alice"
    ]
    assert disabled["actor"] == "alerts"
    reinstate(watched)
    assert watched.client.get("/v1/whoami", headers=watched.h("alice")).status_code == 200


def test_the_same_refusals_do_not_alert_twice(watched: World) -> None:
    submit(watched, DENIED_SQL)
    settled(watched)
    assert len(alerts(watched, "refusal_burst")) == 1
    assert watched.client.get("/v1/whoami", headers=watched.h("alice")).status_code == 200


def test_queries_that_differ_by_one_condition_alert(watched: World) -> None:
    base = "SELECT COUNT(*) AS n FROM citizens WHERE district = 'North'"
    walk = [submit(watched, base + f" AND sex = '{sex}'") for sex in ("F", "M")]
    walk.append(submit(watched, base))
    # Detection runs when a job ends; the alert's suspension lets running jobs finish or stops them.
    states = {watched.wait(job_id, who="audra")["state"] for job_id in walk}
    assert states <= {"released", "cancelled", "failed"}
    settled(watched)
    [alert] = alerts(watched, "near_identical_queries")
    assert set(alert["evidence"]["jobs"]) == set(walk)
    reinstate(watched)


def test_an_auditor_acknowledges_an_alert_with_a_note(watched: World) -> None:
    [alert] = alerts(watched, "refusal_burst")
    path = f"/v1/alerts/{alert['id']}/acknowledge"
    assert watched.client.post(path, headers=watched.h("audra"), json={"note": ""}).status_code == 422
    done = watched.client.post(path, headers=watched.h("audra"), json={"note": "talked to alice: a typo"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["acknowledged_by"]) == ("acknowledged", "audra")
    assert watched.client.post(path, headers=watched.h("audra"), json={"note": "again"}).status_code == 409
    [event] = [e for e in watched.audit_events("alert.acknowledged") if e["details"]["alert"] == alert["id"]]
    assert event["details"]["note"] == "talked to alice: a typo"
    still_open = watched.client.get("/v1/alerts", headers=watched.h("audra"), params={"state": "open"}).json()
    assert alert["id"] not in {a["id"] for a in still_open}


def test_reading_many_result_rows_alerts_and_a_failed_webhook_is_audited(
    watched: World, webhook: Webhook
) -> None:
    webhook.failing[0] = True
    try:
        job_id = submit(watched, GOOD_SQL)
        assert watched.wait(job_id)["state"] == "released"
        rows = watched.client.get(f"/v1/jobs/{job_id}/result", headers=watched.h("alice")).json()["rows"]
        assert len(rows) >= 5
        settled(watched)
    finally:
        webhook.failing[0] = False
    [alert] = alerts(watched, "download_volume")
    [read] = [e for e in watched.audit_events("job.result.read") if e["details"]["job"] == job_id]
    assert (alert["evidence"]["jobs"], alert["evidence"]["events"]) == ([job_id], [read["seq"]])
    failed = [e["details"]["alert"] for e in watched.audit_events("alert.webhook.failed")]
    assert alert["id"] in failed
    reinstate(watched)


def test_jobs_outside_the_hours_of_the_scopes_purpose_alert(watched: World) -> None:
    hour = datetime.now(UTC).hour
    start, end = (hour + 1, 24) if hour < 23 else (0, 23)  # hours that exclude the present one
    document = scope_yaml(name="night-shift") + (
        f"hours: {{start: {start}, end: {end}, weekdays: [1, 2, 3, 4, 5, 6, 7]}}\n"
    )
    proposed = watched.client.post("/v1/scopes", headers=watched.h("olga"), json={"document": document})
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]["version_id"]
    approve = f"/v1/scopes/night-shift/versions/{version}/approve"
    assert watched.client.post(approve, headers=watched.h("oscar"), json={"reason": "ok"}).status_code == 200
    answer = watched.client.post(
        "/v1/jobs", headers=watched.h("alice"), json={"scope": "night-shift", "sql": GOOD_SQL}
    )
    assert answer.status_code == 202, answer.text
    watched.wait(answer.json()["job_id"], who="audra")
    settled(watched)
    [alert] = [a for a in alerts(watched, "off_hours") if a["scope"] == "night-shift"]
    assert alert["evidence"]["jobs"] == [answer.json()["job_id"]]
    reinstate(watched)
