"""End-to-end flows per role against the real app (SQLite and PostgreSQL, encrypted files, sandbox)."""

from __future__ import annotations

from crypto.audit import AuditEntry, verify_chain
from tests.sandbox_api.api_helpers import (
    DATASET,
    DOMAIN,
    GOOD_SQL,
    SCOPE,
    World,
    citizens_table,
    parquet_bytes,
    upload,
)
from tests.sandbox_api.stores import on_both_stores

store = on_both_stores


def test_operator_job_is_released_with_its_suppression_report(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["state"] == "queued"
    job = api.wait(body["job_id"])
    assert job["state"] == "released", job
    assert job["scope_version"] == api.scope_version
    assert job["dataset_versions"] == {f"{DOMAIN}/{DATASET}": api.dataset_version}
    result = api.client.get(f"/v1/jobs/{body['job_id']}/result", headers=api.h("alice"))
    assert result.status_code == 200, result.text
    released = result.json()
    assert "district" in released["columns"]
    assert not any(c.startswith("_sbx") for c in released["columns"])
    districts = {row[released["columns"].index("district")] for row in released["rows"]}
    # The tiny district has fewer than min_units people: it must be suppressed, and the report says so.
    tiny = citizens_table().column("district").to_pylist().count("Tiny")
    assert 0 < tiny < 10
    assert "Tiny" not in districts
    # The operator learns the rule, not how many groups fell below it (that count can single out a
    # person). Small groups are removed inside the query, before ordering and limits, so the output
    # check downstream finds none to drop (a count of them would need a second scan of the data).
    assert "rows_dropped" not in released["report"]
    assert any("at least 10 distinct units" in r for r in released["report"]["reasons"])
    event = next(e for e in api.audit_events("job.released") if e["details"]["job"] == body["job_id"])
    assert event["details"]["suppression"]["rows_dropped"] == 0
    assert "North" in districts
    assert released["report"]["rows_released"] == len(released["rows"])
    assert released["result_hash"] == job["result_hash"]
    events = [e["event"] for e in api.audit_events("job.") if e["details"].get("job") == body["job_id"]]
    assert events[:5] == ["job.submitted", "job.queued", "job.running", "job.checking", "job.released"]
    assert events.count("job.released") == 1


def test_dry_run_answers_findings_and_rewritten_sql_and_stores_nothing(api: World) -> None:
    before = len(api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"])
    good = api.client.post("/v1/jobs/check", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert good.status_code == 200
    assert good.json()["allowed"] is True
    assert good.json()["rewritten_sql"]
    bad = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": SCOPE, "sql": "SELECT name FROM citizens"}
    )
    assert bad.status_code == 200
    assert bad.json()["allowed"] is False
    assert bad.json()["findings"]
    assert len(api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]) == before


def test_rejected_job_is_stored_audited_and_answered_with_findings(api: World) -> None:
    answer = api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": "SELECT name FROM citizens"}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "job-rejected"
    assert problem["findings"]
    assert all(f["rule"] and f["message"] for f in problem["findings"])
    job = api.client.get(f"/v1/jobs/{problem['job_id']}", headers=api.h("alice")).json()
    assert job["state"] == "rejected"
    assert job["findings"] == problem["findings"]
    assert any(e["details"].get("job") == problem["job_id"] for e in api.audit_events("job.rejected"))


def test_reupload_of_identical_content_is_idempotent(api: World) -> None:
    again = upload(
        api.client,
        api.tokens["stu"],
        files={"citizens": ("citizens.parquet", parquet_bytes(citizens_table()), "application/octet-stream")},
    )
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["version"]["version_id"] == api.dataset_version
    dataset = api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("stu")).json()
    assert [v["version_id"] for v in dataset["versions"]] == [api.dataset_version]
    assert dataset["versions"][0]["tables"][0]["row_count"] == citizens_table().num_rows


def test_dataset_views_show_schema_never_rows(api: World) -> None:
    for who in ("stu", "olga", "admin", "audra", "alice"):
        listing = api.client.get("/v1/datasets", headers=api.h(who))
        assert listing.status_code == 200, (who, listing.text)
        text = listing.text
        assert "P0000001" not in text
        assert "Person " not in text
        assert [d["name"] for d in listing.json()] == [DATASET]
    # bob is granted nothing: he sees no dataset; the other domain's steward sees only her domain.
    assert api.client.get("/v1/datasets", headers=api.h("bob")).json() == []
    assert api.client.get("/v1/datasets", headers=api.h("cleo")).json() == []
    assert api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("bob")).status_code == 404


def test_operators_see_only_their_active_scopes(api: World) -> None:
    mine = api.client.get("/v1/scopes", headers=api.h("alice")).json()
    assert [s["name"] for s in mine] == [SCOPE]
    assert api.client.get("/v1/scopes", headers=api.h("bob")).json() == []
    assert api.client.get(f"/v1/scopes/{SCOPE}", headers=api.h("bob")).status_code == 404


def test_exported_audit_chain_verifies_offline(api: World) -> None:
    export = api.client.get("/v1/audit/export", headers=api.h("audra"))
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    entries = [AuditEntry.from_json(line) for line in export.text.splitlines()]
    head = api.client.get("/v1/audit/head", headers=api.h("audra")).json()
    report = verify_chain(entries)
    assert report.count == len(entries)
    assert report.count <= head["count"]
    assert entries[0].event == "deployment.initialised"
    assert head["checkpoint"]["head_hash"] == head["hash"]
    assert any(e.event == "audit.exported" for e in entries)
