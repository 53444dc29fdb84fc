"""The catalog workflow: an upload is a draft with its validation report; a second steward of the domain
publishes it (then jobs read it) or returns it with reasons; operators only ever see published versions;
every step is audited."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_api.server.services.catalog_review import publish_refusal, return_refusal
from tests.sandbox_api.api_helpers import (
    CITIZENS_MANIFEST,
    DATASET,
    DOMAIN,
    GOOD_SQL,
    SCOPE,
    World,
    citizens_table,
    csv_bytes,
    upload,
    world,
)
from tests.sandbox_api.console_helpers import sign_in


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("catalog-review")) as deployment:
        yield deployment


def _draft(api: World, *, seed: int, dataset: str = DATASET, manifest: Any = CITIZENS_MANIFEST) -> str:
    """stu uploads ``citizens_table(seed=seed)`` to ``dataset`` (declared first if new); its version id."""
    if dataset != DATASET:
        api.client.post("/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": dataset})
    stored = upload(
        api.client,
        api.tokens["stu"],
        manifest=manifest,
        dataset=dataset,
        files={"citizens": ("c.csv", csv_bytes(citizens_table(seed=seed)), "text/csv")},
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["version"]["state"] == "draft"
    return str(stored.json()["version"]["version_id"])


def _decide(
    api: World, who: str, version: str, decision: str, *, dataset: str = DATASET, reason: str = ""
) -> Any:
    return api.client.post(
        f"/v1/datasets/{DOMAIN}/{dataset}/versions/{version}/{decision}",
        headers=api.h(who),
        json={"reason": reason},
    )


def _dataset(api: World, who: str, dataset: str = DATASET) -> dict[str, Any]:
    answer = api.client.get(f"/v1/datasets/{DOMAIN}/{dataset}", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _job_version(api: World) -> str:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert submitted.status_code == 202, submitted.text
    job = api.wait(submitted.json()["job_id"])
    assert job["state"] == "released", job
    return str(job["dataset_versions"][f"{DOMAIN}/{DATASET}"])


def test_a_draft_is_not_read_by_jobs_nor_seen_by_operators_until_a_second_steward_publishes_it(
    api: World,
) -> None:
    live = api.dataset_version
    draft = _draft(api, seed=8)
    assert _dataset(api, "stu")["current_version"] == live
    assert {v["version_id"]: v["state"] for v in _dataset(api, "stu")["versions"]}[draft] == "draft"
    # The operator's listing, schema view and jobs know only the published version.
    assert [v["version_id"] for v in _dataset(api, "alice")["versions"]] == [live]
    listed = api.client.get("/v1/datasets", headers=api.h("alice")).json()
    assert all(v["state"] not in {"draft", "returned"} for d in listed for v in d["versions"])
    assert _job_version(api) == live
    hidden = api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}/versions/{draft}", headers=api.h("alice"))
    assert hidden.status_code == 404

    published = _decide(api, "sam", draft, "publish", reason="report checked")
    assert published.status_code == 200, published.text
    assert published.json()["current_version"] == draft
    assert _job_version(api) == draft
    version = next(v for v in _dataset(api, "alice")["versions"] if v["version_id"] == draft)
    assert version["state"] == "active"
    assert version["reviewed_by"] == "sam"
    assert version["validation"] is None  # counts over the steward's rows are not for operators
    events = [e for e in api.audit_events("dataset.version.published") if e["details"]["version"] == draft]
    assert [(e["actor"], e["details"]["uploaded_by"]) for e in events] == [("sam", "stu")]


def test_the_uploader_cannot_publish_or_return_their_own_draft_and_the_refusal_is_audited(api: World) -> None:
    draft = _draft(api, seed=11, dataset="own-draft")
    for decision in ("publish", "return"):
        refused = _decide(api, "stu", draft, decision, dataset="own-draft", reason="mine")
        assert refused.status_code == 403, refused.text
        assert "four eyes" in refused.json()["detail"]
    assert _dataset(api, "stu", "own-draft")["versions"][0]["state"] == "draft"
    denied = [e for e in api.audit_events("request.denied") if e["actor"] == "stu"]
    assert any("four eyes" in e["details"]["reason"] and draft in e["details"]["path"] for e in denied)


def test_a_steward_of_another_domain_cannot_review(api: World) -> None:
    draft = _draft(api, seed=12, dataset="other-domain")
    refused = _decide(api, "cleo", draft, "publish", dataset="other-domain")
    assert refused.status_code == 403, refused.text
    assert _dataset(api, "stu", "other-domain")["current_version"] is None


def test_a_returned_draft_keeps_its_reasons_in_the_history_and_never_goes_live(api: World) -> None:
    draft = _draft(api, seed=13, dataset="returned")
    no_reason = _decide(api, "sam", draft, "return", dataset="returned", reason="  ")
    assert no_reason.status_code == 422, no_reason.text
    returned = _decide(api, "sam", draft, "return", dataset="returned", reason="district codes are outdated")
    assert returned.status_code == 200, returned.text
    body = returned.json()
    assert body["current_version"] is None
    assert body["versions"][0]["state"] == "returned"
    assert body["versions"][0]["review_reason"] == "district codes are outdated"
    assert _decide(api, "sam", draft, "publish", dataset="returned").status_code == 409
    # The correction is a new upload: a new draft beside the returned one, which stays in the history.
    corrected = _draft(api, seed=14, dataset="returned")
    assert _decide(api, "sam", corrected, "publish", dataset="returned").status_code == 200
    states = {v["version_id"]: v["state"] for v in _dataset(api, "stu", "returned")["versions"]}
    assert states == {draft: "returned", corrected: "active"}
    events = [e for e in api.audit_events("dataset.version.returned") if e["details"]["version"] == draft]
    assert [(e["actor"], e["details"]["reason"]) for e in events] == [("sam", "district codes are outdated")]


def test_the_draft_carries_a_validation_report_of_every_declared_check(api: World) -> None:
    manifest = copy.deepcopy(CITIZENS_MANIFEST)
    manifest["tables"][0]["one_row_per_unit"] = True
    manifest["tables"][0]["columns"][1]["nullable"] = False
    draft = _draft(api, seed=15, dataset="reported", manifest=manifest)
    answer = api.client.get(f"/v1/datasets/{DOMAIN}/reported/versions/{draft}", headers=api.h("sam"))
    assert answer.status_code == 200, answer.text
    report = answer.json()["validation"]
    assert report["passed"] is True
    (table,) = report["tables"]
    assert table["rows"] == citizens_table().num_rows
    checks = {(c["check"], c["column"]): c for c in table["checks"]}
    assert {("columns", None), ("unit_not_null", "person_id"), ("unit_unique", "person_id")} <= set(checks)
    assert checks[("domain", "district")]["passed"] is True
    assert checks[("domain", "income")]["detail"].startswith("0 value(s) outside")
    assert checks[("nulls", "name")]["detail"] == "0 missing value(s) (declared nullable: false)"
    created = [e for e in api.audit_events("dataset.version.created") if e["details"]["version"] == draft]
    assert [(e["details"]["state"], e["details"]["validation"]) for e in created] == [("draft", "passed")]


def test_a_column_declared_not_nullable_refuses_an_upload_with_missing_values(api: World) -> None:
    manifest = copy.deepcopy(CITIZENS_MANIFEST)
    manifest["tables"][0]["columns"][1]["nullable"] = False
    table = citizens_table(50)
    names = table.column("name").to_pylist()
    names[3] = None
    table = table.set_column(1, "name", [names])
    refused = upload(
        api.client,
        api.tokens["stu"],
        manifest=manifest,
        files={"citizens": ("c.csv", csv_bytes(table), "text/csv")},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid-upload"
    assert [f["rule"] for f in refused.json()["findings"]] == ["nulls"]


def test_publishing_an_older_draft_makes_it_current_since_current_is_the_latest_published(api: World) -> None:
    first = _draft(api, seed=16, dataset="order")
    second = _draft(api, seed=17, dataset="order")
    assert _decide(api, "sam", second, "publish", dataset="order").status_code == 200
    assert _decide(api, "sam", first, "publish", dataset="order").json()["current_version"] == first


def test_a_deployment_without_review_publishes_each_upload_at_once(tmp_path: Path) -> None:
    with world(tmp_path, catalog_review_required=False) as api:
        version = _dataset(api, "stu")["versions"][0]
        assert version["state"] == "active"
        assert version["reviewed_by"] is None
        (event,) = api.audit_events("dataset.version.published")
        assert event["actor"] == "stu"
        assert "not required" in event["details"]["review"]


def test_in_the_console_a_second_steward_reviews_the_report_and_publishes_and_operators_never_see_drafts(
    api: World,
) -> None:
    draft = _draft(api, seed=18, dataset="console-review")
    stu = sign_in(api.client, api.tokens["stu"])
    own = stu.get(api.client, "/console/datasets").text
    section = own[own.index("console-review") :]
    assert "Your upload: a second steward of the domain reviews it." in section
    assert f"/versions/{draft}/publish" not in section
    sam = sign_in(api.client, api.tokens["sam"])
    page = sam.get(api.client, "/console/datasets").text
    section = page[page.index("console-review") :]
    assert "Validation report" in section
    assert "every check passed" in section
    assert f"/versions/{draft}/publish" in section
    path = f"/console/datasets/{DOMAIN}/console-review/versions/{draft}"
    assert stu.post(api.client, path + "/publish", {"reason": "mine"}).status_code == 403
    empty = sam.post(api.client, path + "/return", {"reason": ""})
    assert empty.status_code == 422
    published = sam.post(api.client, path + "/publish", {"reason": "report checked"})
    assert published.status_code in (303, 302), published.text
    assert _dataset(api, "stu", "console-review")["current_version"] == draft
    # The operator's schema browser lists no draft of any dataset.
    waiting = _draft(api, seed=19)
    alice = sign_in(api.client, api.tokens["alice"])
    assert waiting[:12] not in alice.get(api.client, "/console/datasets").text


def test_a_draft_whose_report_failed_cannot_be_published_only_returned() -> None:
    failed = {"passed": False, "tables": []}
    refused = publish_refusal(state="draft", uploader="stu", reviewer="sam", validation=failed)
    assert refused is not None
    assert refused.code == "conflict"
    assert return_refusal(state="draft", uploader="stu", reviewer="sam", reason="values out of range") is None
    # Versions stored before reports existed were live already; a missing report does not block.
    assert publish_refusal(state="draft", uploader="stu", reviewer="sam", validation=None) is None


def test_a_job_reads_a_published_table_with_its_declared_column_types(api: World) -> None:
    # A split job merges float sums exactly only where it knows which columns are floats.
    catalog = api.client.app.state.services.catalog  # type: ignore[attr-defined]
    table = catalog.table_input(
        dataset=f"{DOMAIN}/{DATASET}", version_id=api.dataset_version, table="citizens", sql_name="citizens"
    )
    declared = {c["name"]: c["type"] for c in CITIZENS_MANIFEST["tables"][0]["columns"]}
    assert dict(table.column_types) == declared
    assert dict(table.column_types)["income"] == "DOUBLE"
