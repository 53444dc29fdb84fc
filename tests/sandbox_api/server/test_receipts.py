"""Receipts: signed in the release transaction, returned with the result, verifiable offline."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crypto.hashing import sha256_hex
from sandbox_api.cli.audit import build_app
from sandbox_api.client.verify import verify_receipt
from sandbox_api.receipt_format import RECEIPT_TYPE, receipt_digest, signed_bytes
from tests.sandbox_api.api_helpers import DATASET, DOMAIN, SCOPE, World
from tests.sandbox_api.auditing_helpers import receipt_of, release, result_of, trusted_keys

DATED_SQL = (
    "SELECT district, birth_date, COUNT(*) AS n, SUM(income) AS total FROM citizens "
    "GROUP BY district, birth_date"
)
cli = CliRunner()


def test_the_result_carries_the_receipt_that_the_receipt_endpoint_serves(api: World) -> None:
    job_id = release(api)
    result = result_of(api, job_id)
    assert result["receipt"] == receipt_of(api, job_id)
    assert result["receipt"] == receipt_of(api, job_id, who="alice")
    assert result["receipt"] == receipt_of(api, job_id, who="admin")


def test_the_receipt_signs_every_fact_of_the_release(api: World) -> None:
    job_id = release(api)
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.h("audra")).json()
    result = result_of(api, job_id)
    receipt = result["receipt"]
    assert receipt["type"] == RECEIPT_TYPE
    assert receipt["job_id"] == job_id
    assert receipt["operator"] == "alice"
    assert receipt["scope"] == {
        "name": SCOPE,
        "version_id": api.scope_version,
        "catalog": {f"{DOMAIN}/{DATASET}": api.dataset_version},  # every dataset the scope names
    }
    assert receipt["datasets"] == {f"{DOMAIN}/{DATASET}": api.dataset_version}
    assert receipt["query"]["original_sha256"] == sha256_hex(job["sql"].encode())
    assert receipt["query"]["rewritten_sha256"] == sha256_hex(job["rewritten_sql"].encode())
    assert receipt["query"]["passes"] == job["applied"]
    assert "duckdb" in receipt["engine"]
    assert receipt["result"]["hash"] == job["result_hash"] == result["result_hash"]
    assert receipt["result"]["row_count"] == result["row_count"]
    assert receipt["suppression"] == result["report"]
    assert receipt["kid"] in trusted_keys(api)


def test_the_receipt_signs_the_release_event_and_is_chained_after_it(api: World) -> None:
    job_id = release(api)
    receipt = receipt_of(api, job_id)
    events = api.audit_events()
    released = next(e for e in events if e["event"] == "job.released" and e["details"]["job"] == job_id)
    assert receipt["audit_head"] == {"seq": released["seq"], "hash": released["hash"]}
    signed = events[released["seq"] + 1]
    assert signed["event"] == "receipt.signed"
    assert signed["details"]["job"] == job_id
    assert signed["details"]["receipt_sha256"] == receipt_digest(receipt)


def test_every_released_job_has_exactly_one_stored_receipt(api: World) -> None:
    release(api)
    with sqlite3.connect(api.settings.state_dir / "metadata.db") as db:
        released = {r[0] for r in db.execute("SELECT id FROM jobs WHERE state = 'released'")}
        receipts = {r[0] for r in db.execute("SELECT job_id FROM receipts")}
    assert released == receipts


def test_receipts_verify_offline_with_dates_and_floats_in_the_result(api: World) -> None:
    job_id = release(api, DATED_SQL)
    result = result_of(api, job_id)
    assert any(isinstance(v, float) for row in result["rows"] for v in row)
    # What an operator saves and hands on: the JSON as served, read back from disk.
    saved = json.loads(json.dumps(result))
    report = verify_receipt(saved["receipt"], trusted_keys(api), result=saved)
    assert report.job_id == job_id
    assert report.result_checked


def test_receipt_verify_command_accepts_a_good_pair(api: World, tmp_path: Path) -> None:
    job_id = release(api)
    result = result_of(api, job_id)
    paths = _save(
        tmp_path, result=result, receipt=result["receipt"], keys=api.client.get("/v1/keys/signing").json()
    )
    answer = cli.invoke(
        build_app(), ["receipt", "verify", paths["result"], paths["receipt"], "--public-key", paths["keys"]]
    )
    assert answer.exit_code == 0, answer.output
    assert f"receipt for job {job_id}" in answer.output


def test_receipt_verify_command_refuses_an_edited_result(api: World, tmp_path: Path) -> None:
    job_id = release(api)
    result = result_of(api, job_id)
    result["rows"][1][1] += 1
    paths = _save(
        tmp_path, result=result, receipt=result["receipt"], keys=api.client.get("/v1/keys/signing").json()
    )
    answer = cli.invoke(
        build_app(), ["receipt", "verify", paths["result"], paths["receipt"], "--public-key", paths["keys"]]
    )
    assert answer.exit_code == 1
    assert f"result of job {job_id}: row 1 differs" in answer.output


def test_receipt_verify_command_needs_trusted_keys(api: World, tmp_path: Path) -> None:
    result = result_of(api, release(api))
    paths = _save(tmp_path, result=result, receipt=result["receipt"], keys={})
    answer = cli.invoke(build_app(), ["receipt", "verify", paths["result"], paths["receipt"]])
    assert answer.exit_code == 1
    assert "--public-key" in answer.output


@pytest.mark.parametrize("who", ["bob", "olga", "stu", "chad"])
def test_only_the_owner_auditors_and_admins_read_a_receipt(api: World, who: str) -> None:
    job_id = release(api)
    answer = api.client.get(f"/v1/jobs/{job_id}/receipt", headers=api.h(who))
    assert answer.status_code == (404 if who == "bob" else 403), answer.text


def test_reading_a_receipt_is_audited(api: World) -> None:
    job_id = release(api)
    receipt_of(api, job_id, who="audra")
    reads = [e for e in api.audit_events("receipt.read") if e["details"]["job"] == job_id]
    assert [e["actor"] for e in reads] == ["audra"]


def test_the_published_keys_need_no_token_and_hold_no_private_material(api: World) -> None:
    answer = api.client.get("/v1/keys/signing")
    assert answer.status_code == 200
    body = answer.json()
    assert body["format"] == "data-sandbox/signing-keys/v1"
    assert {k["state"] for k in body["keys"]} <= {"current", "retired"}
    assert all(set(k) == {"kid", "public", "not_before", "not_after", "state"} for k in body["keys"])


def test_the_receipt_signature_covers_every_member_but_itself(api: World) -> None:
    receipt = receipt_of(api, release(api))
    assert "signature" not in json.loads(signed_bytes(receipt))
    assert set(json.loads(signed_bytes(receipt))) == set(receipt) - {"signature"}


def _save(tmp_path: Path, **documents: object) -> dict[str, str]:
    paths = {}
    for name, value in documents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(value), encoding="utf-8")
        paths[name] = str(path)
    return paths
