"""Replay: a released job runs again from its receipt's records to the same canonical result hash."""

from __future__ import annotations

from sandbox_api.verify import verify_receipt
from tests.sandbox_api.api_helpers import DOMAIN, SCOPE, World
from tests.sandbox_api.auditing_helpers import receipt_of, release, replay, result_of, trusted_keys

MASKED_SQL = (
    "SELECT sex, birth_date, COUNT(DISTINCT person_id) AS people, AVG(income) AS avg_income "
    "FROM citizens GROUP BY sex, birth_date"
)


def test_a_replay_matches_the_receipt(api: World) -> None:
    job_id = release(api, MASKED_SQL)
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    assert report["match"] is True
    assert report["mismatches"] == []
    assert (
        report["actual_result_hash"]
        == report["expected_result_hash"]
        == receipt_of(api, job_id)["result"]["hash"]
    )
    assert report["replayed_by"] == "audra"
    assert "duckdb" in report["engine"]


def test_replays_are_audited_with_their_outcome(api: World) -> None:
    job_id = release(api)
    replay(api, job_id)
    events = [e for e in api.audit_events("job.replayed") if e["details"]["job"] == job_id]
    assert len(events) == 1
    assert events[0]["actor"] == "audra"
    assert events[0]["details"]["outcome"] == "match"
    assert events[0]["details"]["actual_result_hash"] == events[0]["details"]["expected_result_hash"]


def test_only_auditors_replay_and_refusals_are_audited(api: World) -> None:
    job_id = release(api)
    for who in ("alice", "admin", "olga"):
        answer = api.client.post(f"/v1/jobs/{job_id}/replay", headers=api.h(who))
        assert answer.status_code == 403, answer.text
    denied = [
        e for e in api.audit_events("request.denied") if e["details"].get("path", "").endswith("/replay")
    ]
    assert {e["actor"] for e in denied} >= {"alice", "admin", "olga"}


def test_a_job_without_a_receipt_cannot_be_replayed(api: World) -> None:
    answer = api.client.post(
        "/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": "SELECT name FROM citizens"}
    )
    assert answer.status_code == 422
    rejected = answer.json()["job_id"]
    refused = api.client.post(f"/v1/jobs/{rejected}/replay", headers=api.h("audra"))
    assert refused.status_code == 409
    assert "only a released job with a receipt" in refused.json()["detail"]
    missing = api.client.post("/v1/jobs/nope/replay", headers=api.h("audra"))
    assert missing.status_code == 404


def test_replay_and_receipts_survive_kek_and_signing_key_rotation(api: World) -> None:
    before = release(api, MASKED_SQL)
    old_receipt = receipt_of(api, before)
    rotated = api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin"))
    assert rotated.status_code == 200, rotated.text
    signing = api.client.post("/v1/keys/signing/rotate", headers=api.h("admin"))
    assert signing.status_code == 200, signing.text
    assert signing.json()["retired"] == old_receipt["kid"]

    keys = trusted_keys(api)
    assert keys[old_receipt["kid"]].not_after is not None  # retired, still published
    verify_receipt(old_receipt, keys, result=result_of(api, before))
    assert replay(api, before)["outcome"] == "match"

    after = release(api, MASKED_SQL)
    new_receipt = receipt_of(api, after)
    assert new_receipt["kid"] == signing.json()["kid"] != old_receipt["kid"]
    assert new_receipt["result"]["hash"] == old_receipt["result"]["hash"]
    verify_receipt(new_receipt, keys, result=result_of(api, after))
    assert replay(api, after)["outcome"] == "match"
    rotations = api.audit_events("signing_key.rotated")
    assert rotations[-1]["actor"] == "admin"
    assert rotations[-1]["details"]["kid"] == new_receipt["kid"]


def test_only_admins_rotate_the_signing_key(api: World) -> None:
    for who in ("audra", "alice", "stu"):
        assert api.client.post("/v1/keys/signing/rotate", headers=api.h(who)).status_code == 403
