"""The console's governance pages: an operator applies for access and follows the outcome, a policy officer
refuses an application with a reason, and an auditor reads an alert with its evidence and acknowledges it.
Each page goes through the same services as /v1/applications and /v1/alerts."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import DATASET, DOMAIN, SCOPE, World, world
from tests.sandbox_api.console_helpers import sign_in

DENIED_SQL = "SELECT name, COUNT(*) AS n FROM citizens GROUP BY name"  # name is denied: rejected


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("console-governance"), alerts_refusals=2) as deployment:
        yield deployment


def test_an_operator_applies_and_sees_the_officers_refusal_with_its_reason(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    form = {
        "datasets": f"{DOMAIN}/{DATASET}",
        "columns": f"{DOMAIN}/{DATASET}: district, income",
        "purpose": "income by district for the 2027 budget",
        "duration_days": "30",
    }
    assert alice.post(api.client, "/console/applications", form).status_code == 303
    [application] = api.client.get("/v1/applications", headers=api.h("alice")).json()
    assert application["columns"] == {f"{DOMAIN}/{DATASET}": ["district", "income"]}
    assert application["state"] == "submitted"

    olga = sign_in(api.client, api.tokens["olga"])
    page = olga.get(api.client, "/console/applications")
    assert f"/console/applications/{application['id']}/refuse" in page.text
    refuse = f"/console/applications/{application['id']}/refuse"
    assert olga.post(api.client, refuse, {"reason": " "}).status_code == 422  # a reason is required
    reason = "income is sensitive: apply for counts only"
    assert olga.post(api.client, refuse, {"reason": reason}).status_code == 303

    seen = alice.get(api.client, "/console/applications")
    assert seen.status_code == 200
    assert "refused" in seen.text
    assert reason in seen.text
    # An operator decides nothing: the forms are an officer's only.
    assert alice.post(api.client, refuse, {"reason": "mine"}).status_code == 403


def test_an_auditor_reads_an_alert_with_its_evidence_and_acknowledges_it(api: World) -> None:
    for _ in range(2):
        answer = api.client.post("/v1/jobs", headers=api.h("bob"), json={"scope": SCOPE, "sql": DENIED_SQL})
        assert answer.status_code in (403, 422), answer.text
    assert api.client.app.state.services.alerts.wait_idle(30)  # type: ignore[attr-defined]
    alerts = api.client.get("/v1/alerts", headers=api.h("audra")).json()
    [alert] = [a for a in alerts if a["rule"] == "refusal_burst" and a["operator"] == "bob"]

    audra = sign_in(api.client, api.tokens["audra"])
    page = audra.get(api.client, "/console/alerts")
    assert page.status_code == 200
    assert html.unescape(page.text).count(alert["message"]) == 1
    assert "refusal_burst" in page.text
    ack = f"/console/alerts/{alert['id']}/acknowledge"
    assert audra.post(api.client, ack, {"note": ""}).status_code == 422
    assert audra.post(api.client, ack, {"note": "bob was testing the denied column"}).status_code == 303
    after = [a for a in api.client.get("/v1/alerts", headers=api.h("audra")).json() if a["id"] == alert["id"]]
    assert after[0]["acknowledged_by"] == "audra"
    # Admins read alerts but acknowledging is an auditor's act.
    admin = sign_in(api.client, api.tokens["admin"])
    assert admin.get(api.client, "/console/alerts").status_code == 200
    assert admin.post(api.client, ack, {"note": "x"}).status_code == 403
