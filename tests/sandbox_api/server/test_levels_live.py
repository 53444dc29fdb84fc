"""Classification levels bind scopes through the API: refused at creation and at approval, floor named.

The deployment's data is L3 (the default, its manifest declares none); a register uploaded as L4 binds
the stricter floors.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import (
    CITIZENS_MANIFEST,
    DATASET,
    DOMAIN,
    GOOD_SQL,
    SCOPE,
    World,
    citizens_table,
    csv_bytes,
    scope_yaml,
    upload,
    world,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("levels")) as deployment:
        yield deployment


def manifest_at(level: str | None) -> dict[str, Any]:
    manifest = copy.deepcopy(CITIZENS_MANIFEST)
    if level is not None:
        manifest["level"] = level
    return manifest


def propose(api: World, document: str) -> Any:
    return api.client.post("/v1/scopes", headers=api.h("olga"), json={"document": document, "format": "yaml"})


def test_an_identifying_column_granted_plain_is_refused_with_the_floor_named(api: World) -> None:
    # The attack from the issue: `plain` on a name was accepted without a finding.
    document = scope_yaml(name="names-plain").replace("name: {use: deny}", "name: {use: plain}")
    answer = propose(api, document)
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "scope-inconsistent"
    assert [f["rule"] for f in body["findings"]] == ["level_column_use"]
    assert "is L3" in body["findings"][0]["message"]


def test_min_units_below_the_default_level_is_refused(api: World) -> None:
    answer = propose(api, scope_yaml(name="small-k", min_units=5))
    assert answer.status_code == 422
    assert [f["rule"] for f in answer.json()["findings"]] == ["level_min_units"]


def test_an_upload_with_an_undefined_level_is_refused(api: World) -> None:
    answer = upload(api.client, api.tokens["stu"], manifest=manifest_at("L9"))
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid-upload"
    assert answer.json()["findings"][0]["rule"] == "manifest.level"


def test_approval_rechecks_the_floors_against_the_current_level(api: World) -> None:
    proposed = propose(api, scope_yaml(name="before-l4"))
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]["version_id"]
    # The steward re-classifies the data: a new version (different rows) declared L4.
    stored = upload(api.client, api.tokens["stu"], manifest=manifest_at("L4"), dataset=DATASET)
    assert stored.status_code == 409  # same rows, different declarations: versions are immutable
    files = {"citizens": ("citizens.csv", csv_bytes(citizens_table(1400, seed=9)), "text/csv")}
    stored = upload(
        api.client, api.tokens["stu"], manifest=manifest_at("L4"), files=files, reviewer=api.tokens["sam"]
    )
    assert stored.status_code == 201, stored.text
    approved = api.client.post(
        f"/v1/scopes/before-l4/versions/{version}/approve", headers=api.h("oscar"), json={"reason": "ok"}
    )
    assert approved.status_code == 422
    rules = {f["rule"] for f in approved.json()["findings"]}
    assert {"level_min_units", "level_dp_required", "level_approvals"} <= rules
    refused = [e for e in api.audit_events("scope.approval.refused") if e["details"]["scope"] == "before-l4"]
    assert len(refused) == 1
    assert "level_dp_required" in refused[0]["details"]["floors"]
    listed = api.client.get("/v1/scopes/before-l4", headers=api.h("olga")).json()
    assert listed["versions"][0]["state"] == "pending"  # the refusal changed nothing
    # The scope approved before the re-classification binds no more: its jobs are refused, floor named.
    job = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert job.status_code == 403
    assert job.json()["code"] == "scope-not-active"
    assert "level_dp_required" in {f["rule"] for f in job.json()["findings"]}


def test_a_version_shows_its_declared_level(api: World) -> None:
    dataset = api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("olga")).json()
    levels = {v["version_id"]: v["tables"][0]["level"] for v in dataset["versions"]}
    assert levels[api.dataset_version] is None  # undeclared: the deployment's default
    assert "L4" in levels.values()  # the version the approval test uploaded
