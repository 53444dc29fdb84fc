"""Helpers for the auditing tests: run a job to release, fetch its result and receipt, the trusted keys."""

from __future__ import annotations

from typing import Any

from crypto.signing import SigningKeyRecord
from sandbox_api.client.verify import parse_keys
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World


def release(api: World, sql: str = GOOD_SQL, *, who: str = "alice", scope: str = SCOPE) -> str:
    """Submit ``sql`` under ``scope`` (the world's own by default) and wait until it is released."""
    answer = api.client.post("/v1/jobs", headers=api.h(who), json={"scope": scope, "sql": sql})
    assert answer.status_code == 202, answer.text
    job_id = str(answer.json()["job_id"])
    job = api.wait(job_id, who=who)
    assert job["state"] == "released", job
    return job_id


def result_of(api: World, job_id: str, *, who: str = "alice") -> dict[str, Any]:
    answer = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def receipt_of(api: World, job_id: str, *, who: str = "audra") -> dict[str, Any]:
    answer = api.client.get(f"/v1/jobs/{job_id}/receipt", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def trusted_keys(api: World) -> dict[str, SigningKeyRecord]:
    """The published keys, fetched without a token (as an outside verifier would)."""
    answer = api.client.get("/v1/keys/signing")
    assert answer.status_code == 200, answer.text
    return parse_keys(answer.json())


def replay(api: World, job_id: str, *, who: str = "audra") -> dict[str, Any]:
    answer = api.client.post(f"/v1/jobs/{job_id}/replay", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
