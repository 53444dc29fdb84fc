"""Alerts on unusual use, live: refusals and near-identical queries raise alerts that name their
evidence, reach auditors through the API and a webhook, are audited, suspend the operator when the
deployment says so (an admin lifts it), and are acknowledged with a note."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import SCOPE, World, world

DENIED_SQL = "SELECT name, COUNT(*) AS n FROM citizens GROUP BY name"  # name is denied: rejected


class Webhook:
    """A loopback HTTP server that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.received = received
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
def watched(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[World]:
    with world(
        tmp_path_factory.mktemp("alerts"),
        alerts_refusals=3,
        alerts_near_identical=3,
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
    assert [body["id"] for body in webhook.received if body["rule"] == "refusal_burst"] == [alert["id"]]
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
    settled(watched)
    [alert] = alerts(watched, "near_identical_queries")
    assert set(alert["evidence"]["jobs"]) == set(walk)
    # The suspension settled the operator's jobs as a disable does: none is left waiting to run.
    states = {watched.wait(job_id, who="audra")["state"] for job_id in walk}
    assert states <= {"released", "cancelled", "failed"}
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
