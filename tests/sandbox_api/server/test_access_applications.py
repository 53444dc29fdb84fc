"""Access applications: an operator applies, an officer drafts a scope, a second officer approves.

The operator follows the outcome in the API; refusals carry reasons; another operator's application
answers 404; every step is an audit event.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.sandbox_api.api_helpers import DATASET, DOMAIN, World
from tests.sandbox_api.stores import on_both_stores

store = on_both_stores
DS = f"{DOMAIN}/{DATASET}"


def apply(api: World, *, who: str = "alice", days: int = 30) -> dict[str, Any]:
    answer = api.client.post(
        "/v1/applications",
        headers=api.h(who),
        json={
            "datasets": [DS],
            "purpose": "Influenza burden by district",
            "columns": {DS: ["person_id", "district", "income"]},
            "duration_days": days,
        },
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def draft(name: str, *, until: date, grantees: str = "[operator:alice]", extra: str = "") -> str:
    return f"""
scope: {name}
purpose: "Influenza burden by district"
grantees: {grantees}
valid: {{from: {date.today()}, until: {until}}}
datasets:
  {DS}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
      income: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}}
{extra}
"""


def test_an_application_becomes_an_approved_scope_with_four_eyes(api: World) -> None:
    application = apply(api)
    assert application["state"] == "submitted"
    drafted = api.client.post(
        f"/v1/applications/{application['id']}/draft",
        headers=api.h("olga"),
        json={"document": draft("app-flu", until=date.today() + timedelta(days=30))},
    )
    assert drafted.status_code == 200, drafted.text
    version = drafted.json()["scope_version"]
    assert drafted.json()["state"] == "awaiting_approval"
    path = f"/v1/scopes/app-flu/versions/{version}/approve"
    # The drafting officer is the scope's author; the applicant is its grantee: neither approves.
    assert api.client.post(path, headers=api.h("olga"), json={"reason": "mine"}).status_code == 403
    assert api.client.post(path, headers=api.h("alice"), json={"reason": "me"}).status_code == 403
    assert api.client.post(path, headers=api.h("oscar"), json={"reason": "fits"}).status_code == 200
    seen = api.client.get(f"/v1/applications/{application['id']}", headers=api.h("alice")).json()
    assert (seen["state"], seen["scope_name"], seen["decided_by"]) == ("approved", "app-flu", "oscar")
    granted = api.client.get("/v1/scopes", headers=api.h("alice")).json()
    assert "app-flu" in {s["name"] for s in granted}
    events = [e["event"] for e in api.audit_events("application.")]
    assert {"application.submitted", "application.drafted"} <= set(events)


def test_a_draft_wider_than_the_application_is_refused_with_findings(api: World) -> None:
    application = apply(api)
    wider = draft("app-wide", until=date.today() + timedelta(days=400), extra="      sex: {use: group}\n")
    answer = api.client.post(
        f"/v1/applications/{application['id']}/draft", headers=api.h("olga"), json={"document": wider}
    )
    assert answer.status_code == 422, answer.text
    rules = {f["rule"] for f in answer.json()["findings"]}
    assert rules == {"application_column_not_requested", "application_duration"}
    still = api.client.get(f"/v1/applications/{application['id']}", headers=api.h("alice")).json()
    assert still["state"] == "submitted"


def test_a_refusal_carries_its_reason_to_the_applicant(api: World) -> None:
    application = apply(api)
    path = f"/v1/applications/{application['id']}/refuse"
    assert api.client.post(path, headers=api.h("olga"), json={"reason": " "}).status_code == 422
    refused = api.client.post(path, headers=api.h("olga"), json={"reason": "income is not needed for counts"})
    assert refused.status_code == 200, refused.text
    seen = api.client.get(f"/v1/applications/{application['id']}", headers=api.h("alice")).json()
    assert (seen["state"], seen["reason"], seen["decided_by"]) == (
        "refused",
        "income is not needed for counts",
        "olga",
    )
    # A refused application is not drafted any more.
    again = api.client.post(
        f"/v1/applications/{application['id']}/draft",
        headers=api.h("olga"),
        json={"document": draft("app-late", until=date.today())},
    )
    assert again.status_code == 409
    [event] = [
        e for e in api.audit_events("application.refused") if e["details"]["application"] == seen["id"]
    ]
    assert event["actor"] == "olga"


def test_a_rejected_draft_refuses_the_application_with_the_rejections_reason(api: World) -> None:
    application = apply(api)
    drafted = api.client.post(
        f"/v1/applications/{application['id']}/draft",
        headers=api.h("olga"),
        json={"document": draft("app-rejected", until=date.today() + timedelta(days=10))},
    ).json()
    rejected = api.client.post(
        f"/v1/scopes/app-rejected/versions/{drafted['scope_version']}/reject",
        headers=api.h("oscar"),
        json={"reason": "ask the health bureau first"},
    )
    assert rejected.status_code == 200, rejected.text
    seen = api.client.get(f"/v1/applications/{application['id']}", headers=api.h("alice")).json()
    assert (seen["state"], seen["reason"]) == ("refused", "ask the health bureau first")


def test_operators_see_only_their_own_applications(api: World) -> None:
    mine = apply(api)
    assert api.client.get(f"/v1/applications/{mine['id']}", headers=api.h("bob")).status_code == 404
    assert mine["id"] not in {
        a["id"] for a in api.client.get("/v1/applications", headers=api.h("bob")).json()
    }
    assert mine["id"] in {a["id"] for a in api.client.get("/v1/applications", headers=api.h("audra")).json()}


def test_an_application_names_datasets_and_columns_that_exist(api: World) -> None:
    base = {"purpose": "p", "duration_days": 5}
    missing = {**base, "datasets": [f"{DOMAIN}/nothing"], "columns": {}}
    assert api.client.post("/v1/applications", headers=api.h("alice"), json=missing).status_code == 404
    unknown = {**base, "datasets": [DS], "columns": {DS: ["shoe_size"]}}
    assert api.client.post("/v1/applications", headers=api.h("alice"), json=unknown).status_code == 422
    stray = {**base, "datasets": [DS], "columns": {"x/y": ["a"]}}
    assert api.client.post("/v1/applications", headers=api.h("alice"), json=stray).status_code == 422


def test_a_draft_must_be_a_new_scope_version(api: World) -> None:
    first, second = apply(api), apply(api)
    document = draft("app-twice", until=date.today() + timedelta(days=5))
    path = "/v1/applications/{}/draft"
    answer = api.client.post(path.format(first["id"]), headers=api.h("olga"), json={"document": document})
    assert answer.status_code == 200, answer.text
    again = api.client.post(path.format(second["id"]), headers=api.h("olga"), json={"document": document})
    assert again.status_code == 409
    assert (
        api.client.get(f"/v1/applications/{second['id']}", headers=api.h("alice")).json()["state"]
        == "submitted"
    )
