"""Bad input: a clear 4xx problem document, nothing stored, security-relevant refusals audited."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
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
    parquet_bytes,
    scope_yaml,
    upload,
    world,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A deployment with a 1 MiB upload cap and a 4 KiB JSON cap."""
    with world(tmp_path_factory.mktemp("small"), max_upload_mb=1, max_request_kb=4) as deployment:
        yield deployment


def _problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:sandbox:{code}"
    assert body["title"]
    assert body["detail"]
    return body


def _stored_state(api: World) -> tuple[list[str], list[str]]:
    versions = api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("stu")).json()["versions"]
    data = api.settings.data_dir / DOMAIN / DATASET
    return [v["version_id"] for v in versions], sorted(p.name for p in data.iterdir())


def _csv_upload(api: World, payload: bytes, *, manifest: Any = CITIZENS_MANIFEST) -> Any:
    return upload(
        api.client, api.tokens["stu"], manifest=manifest, files={"citizens": ("c.csv", payload, "text/csv")}
    )


BAD_UPLOADS: dict[str, tuple[bytes, str]] = {
    "ragged-csv": (
        b"person_id,name,district,sex,birth_date,income\nP1,A,North,F,1970-01-01,10\nP2,B,North\n",
        "same number of fields",
    ),
    "latin-1-csv": (
        "person_id,name,district,sex,birth_date,income\nP1,Jos\u00e9,North,F,1970-01-01,10\n".encode(
            "latin-1"
        ),
        "not UTF-8",
    ),
    "wrong-type": (
        b"person_id,name,district,sex,birth_date,income\nP1,A,North,F,not-a-date,10\n",
        "declared column type",
    ),
    "missing-column": (b"person_id,name,district,sex,income\nP1,A,North,F,10\n", "missing columns"),
    "undeclared-category": (
        b"person_id,name,district,sex,birth_date,income\nP1,A,North,F,1970-01-01,10\nP2,B,Atlantis,F,1970-01-01,10\n",
        "column 'district': 1 value(s) outside the declared categories",
    ),
    "out-of-range": (
        b"person_id,name,district,sex,birth_date,income\nP1,A,North,F,1970-01-01,-5\nP2,B,North,M,1970-01-01,900000\n",
        "column 'income': 2 value(s) outside the declared range [0.0, 200000.0]",
    ),
    "empty-unit": (
        b"person_id,name,district,sex,birth_date,income\n,A,North,F,1970-01-01,10\n",
        "unit column",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_csv_is_refused_and_nothing_is_stored(small: World, case: str) -> None:
    payload, hint = BAD_UPLOADS[case]
    before = _stored_state(small)
    problem = _problem(_csv_upload(small, payload), 422, "invalid-upload")
    assert hint in problem["detail"]
    assert _stored_state(small) == before


def test_corrupted_parquet_is_refused(small: World) -> None:
    good = parquet_bytes(citizens_table(50))
    corrupted = good[:8] + bytes(b ^ 0x5A for b in good[8:-8]) + good[-8:]
    before = _stored_state(small)
    for payload in (corrupted, good[: len(good) // 2], b"PAR1 not really parquet"):
        answer = upload(
            small.client,
            small.tokens["stu"],
            files={"citizens": ("c.parquet", payload, "application/vnd.apache.parquet")},
        )
        assert "corrupted" in _problem(answer, 422, "invalid-upload")["detail"]
    assert _stored_state(small) == before


def test_parquet_with_wrong_column_type_is_refused(small: World) -> None:
    table = citizens_table(50).set_column(5, "income", citizens_table(50).column("name"))
    answer = upload(
        small.client, small.tokens["stu"], files={"citizens": ("c.parquet", parquet_bytes(table), "")}
    )
    assert "income" in _problem(answer, 422, "invalid-upload")["detail"]


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        {"tables": []},
        {
            "tables": [
                {
                    "name": "citizens",
                    "unit": "nobody",
                    "columns": [{"name": "a", "type": "VARCHAR", "class": "public"}],
                }
            ]
        },
        {
            "tables": [
                {
                    "name": "citizens",
                    "unit": "a",
                    "columns": [{"name": "a", "type": "TEXT", "class": "public"}],
                }
            ]
        },
        {
            "tables": [
                {
                    "name": "citizens",
                    "unit": "a",
                    "columns": [{"name": "a", "type": "VARCHAR", "class": "secret"}],
                }
            ]
        },
    ],
    ids=["not-json", "no-tables", "unit-not-a-column", "unknown-type", "unknown-class"],
)
def test_bad_manifest_is_refused(small: World, manifest: Any) -> None:
    _problem(_csv_upload(small, csv_bytes(citizens_table(50)), manifest=manifest), 422, "invalid-upload")


def test_file_parts_must_match_the_manifest_tables(small: World) -> None:
    answer = upload(
        small.client,
        small.tokens["stu"],
        files={"visits": ("v.csv", csv_bytes(citizens_table(20)), "text/csv")},
    )
    assert "missing ['citizens']" in _problem(answer, 422, "invalid-upload")["detail"]


def test_oversize_upload_is_cut_off_with_413(small: World) -> None:
    big = csv_bytes(citizens_table(30_000))
    assert len(big) > 1024 * 1024
    before = _stored_state(small)
    _problem(_csv_upload(small, big), 413, "payload-too-large")
    assert _stored_state(small) == before


def test_oversize_upload_without_content_length_is_cut_off_while_streaming(small: World) -> None:
    boundary = "sandbox-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n'
        f"{json.dumps(CITIZENS_MANIFEST)}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="citizens"; filename="c.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    chunk = b"P1,A,North,F,1970-01-01,10\n" * 4000

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(40):  # ~4 MiB, never announced
            yield chunk

    answer = small.client.post(
        f"/v1/datasets/{DOMAIN}/{DATASET}/versions",
        headers={**small.h("stu"), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    _problem(answer, 413, "payload-too-large")


def test_upload_needs_multipart(small: World) -> None:
    answer = small.client.post(
        f"/v1/datasets/{DOMAIN}/{DATASET}/versions",
        headers=small.h("stu"),
        json={"manifest": CITIZENS_MANIFEST},
    )
    _problem(answer, 415, "unsupported-media-type")


def test_json_endpoints_need_json_and_a_small_body(small: World) -> None:
    text = small.client.post(
        "/v1/jobs", headers={**small.h("alice"), "Content-Type": "text/plain"}, content=b"scope=x&sql=y"
    )
    _problem(text, 415, "unsupported-media-type")
    huge = small.client.post(
        "/v1/jobs", headers=small.h("alice"), json={"scope": SCOPE, "sql": "SELECT 1 " * 2000}
    )
    _problem(huge, 413, "payload-too-large")
    missing = small.client.post("/v1/jobs", headers=small.h("alice"), json={"scope": SCOPE})
    findings = _problem(missing, 422, "request-invalid")["findings"]
    assert any(f["fragment"] == "body" and "needs `sql`" in f["message"] for f in findings)
    extra = small.client.post(
        "/v1/jobs", headers=small.h("alice"), json={"scope": SCOPE, "sql": "x", "mode": "y"}
    )
    _problem(extra, 422, "request-invalid")


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC district FROM citizens",
        "SELECT COUNT(*) FROM citizens; SELECT COUNT(*) FROM citizens",
        "DROP TABLE citizens",
    ],
    ids=["malformed", "several-statements", "not-a-query"],
)
def test_bad_sql_is_rejected_with_findings_and_nothing_runs(api: World, sql: str) -> None:
    problem = _problem(
        api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": sql}),
        422,
        "job-rejected",
    )
    assert problem["findings"]
    job = api.client.get(f"/v1/jobs/{problem['job_id']}", headers=api.h("alice")).json()
    assert job["state"] == "rejected"
    assert job["rewritten_sql"] is None
    events = [e["event"] for e in api.audit_events("job.") if e["details"].get("job") == problem["job_id"]]
    assert events == ["job.submitted", "job.rejected"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/" + "f" * 32),
        ("GET", "/v1/jobs/" + "f" * 32 + "/result"),
        ("POST", "/v1/jobs/" + "f" * 32 + "/cancel"),
        ("GET", f"/v1/datasets/{DOMAIN}/no-such-dataset"),
        ("GET", "/v1/scopes/no-such-scope"),
        ("GET", "/v1/no-such-endpoint"),
    ],
)
def test_unknown_ids_are_404(api: World, method: str, path: str) -> None:
    who = "olga" if "scopes" in path or "datasets" in path else "alice"
    _problem(api.client.request(method, path, headers=api.h(who)), 404, "not-found")


def test_unknown_scope_version_is_404(api: World) -> None:
    answer = api.client.post(
        f"/v1/scopes/{SCOPE}/versions/{'0' * 64}/approve", headers=api.h("oscar"), json={}
    )
    _problem(answer, 404, "not-found")


def _approved_scope(api: World, name: str, **kwargs: Any) -> str:
    created = api.client.post(
        "/v1/scopes", headers=api.h("olga"), json={"document": scope_yaml(name=name, **kwargs)}
    ).json()["version"]["version_id"]
    approved = api.client.post(
        f"/v1/scopes/{name}/versions/{created}/approve", headers=api.h("oscar"), json={}
    )
    assert approved.status_code == 200, approved.text
    return str(created)


def _denials(api: World) -> list[dict[str, Any]]:
    return [e for e in api.audit_events("request.denied") if e["actor"] == "alice"]


def test_expired_scope_refuses_jobs_and_the_refusal_is_audited(api: World) -> None:
    _approved_scope(api, "old-study", valid_from="2000-01-01", valid_until="2001-01-01")
    before = len(api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"])
    denied = len(_denials(api))
    for path in ("/v1/jobs", "/v1/jobs/check"):
        answer = api.client.post(path, headers=api.h("alice"), json={"scope": "old-study", "sql": GOOD_SQL})
        assert "expired" in _problem(answer, 403, "scope-expired")["detail"]
    assert len(api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]) == before
    assert len(_denials(api)) == denied + 2


def test_revoked_scope_refuses_jobs(api: World) -> None:
    version = _approved_scope(api, "short-lived")
    for reason in ("", "   "):  # a revocation, like a rejection, says why; nothing changes without one
        blank = api.client.post(
            f"/v1/scopes/short-lived/versions/{version}/revoke",
            headers=api.h("olga"),
            json={"reason": reason},
        )
        assert "needs a reason" in _problem(blank, 422, "invalid-input")["detail"]
    still = api.client.get("/v1/scopes/short-lived", headers=api.h("olga")).json()
    assert still["active_version"] == version
    revoked = api.client.post(
        f"/v1/scopes/short-lived/versions/{version}/revoke", headers=api.h("olga"), json={"reason": "ended"}
    )
    assert revoked.json()["state"] == "revoked"
    answer = api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": "short-lived", "sql": GOOD_SQL}
    )
    _problem(answer, 403, "scope-not-active")
    again = api.client.post(
        f"/v1/scopes/short-lived/versions/{version}/approve", headers=api.h("oscar"), json={}
    )
    _problem(again, 409, "conflict")


def test_operator_outside_the_grant_is_refused_and_audited(api: World) -> None:
    before = [e for e in api.audit_events("request.denied") if e["actor"] == "bob"]
    answer = api.client.post("/v1/jobs", headers=api.h("bob"), json={"scope": SCOPE, "sql": GOOD_SQL})
    _problem(answer, 403, "forbidden")
    after = [e for e in api.audit_events("request.denied") if e["actor"] == "bob"]
    assert len(after) == len(before) + 1
    assert after[-1]["details"]["scope"] == SCOPE


def test_author_and_grantees_cannot_approve(api: World) -> None:
    doc = scope_yaml(name="four-eyes", grantees=("operator:alice", "group:officers"))
    version = api.client.post("/v1/scopes", headers=api.h("olga"), json={"document": doc}).json()["version"][
        "version_id"
    ]
    own = api.client.post(f"/v1/scopes/four-eyes/versions/{version}/approve", headers=api.h("olga"), json={})
    assert "author" in _problem(own, 403, "forbidden")["detail"]
    state = api.client.get("/v1/scopes/four-eyes", headers=api.h("olga")).json()["versions"][0]
    assert state["state"] == "pending"
    assert state["approvals"] == []


def test_scope_naming_unknown_columns_is_inconsistent(api: World) -> None:
    doc = scope_yaml(name="typo").replace("district: {use: group}", "distric: {use: group}")
    problem = _problem(
        api.client.post("/v1/scopes", headers=api.h("olga"), json={"document": doc}),
        422,
        "scope-inconsistent",
    )
    assert any("distric" in f["message"] for f in problem["findings"])
    invalid = api.client.post("/v1/scopes", headers=api.h("olga"), json={"document": "scope: [unclosed"})
    assert invalid.status_code == 422


def test_steward_of_another_domain_cannot_upload(api: World) -> None:
    before = _stored_state(api)
    answer = upload(api.client, api.tokens["cleo"])
    _problem(answer, 403, "forbidden")
    assert _stored_state(api) == before
    assert any(e["actor"] == "cleo" for e in api.audit_events("request.denied"))


def test_manifest_copy_is_not_shared(api: World) -> None:
    # Guard for the helpers above: the module-level manifest must not be mutated by the tests.
    assert copy.deepcopy(CITIZENS_MANIFEST) == CITIZENS_MANIFEST
    assert Path(api.settings.state_dir).is_dir()
