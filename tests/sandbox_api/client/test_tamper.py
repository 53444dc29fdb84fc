"""Tampering (issue 4, item 7): each attack is detected with a message that names what and where."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crypto.audit import AuditEntry
from crypto.errors import IntegrityError, KeyNotValid, UnknownKey
from crypto.keyring import LocalKeyring
from crypto.signing import generate_signing_key
from sandbox_api.client.verify import parse_keys, verify_bundle, verify_receipt
from sandbox_api.receipt_format import sign_receipt
from tests.sandbox_api.api_helpers import (
    CITIZENS_MANIFEST,
    DATASET,
    DOMAIN,
    World,
    citizens_table,
    csv_bytes,
    upload,
    world,
)
from tests.sandbox_api.auditing_helpers import receipt_of, release, replay, result_of, trusted_keys

EVERY = 4
OTHER_DATASET = "registry"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("tamper"), audit_checkpoint_every=EVERY) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def job(api: World) -> str:
    """A job released on the world's first version, before any other version exists."""
    return release(api)


@pytest.fixture(scope="module")
def bundle(api: World, job: str) -> dict[str, Any]:
    body: dict[str, Any] = api.client.get("/v1/audit/bundle", headers=api.h("audra")).json()
    assert len(body["events"]) > 20
    return body


def _db(api: World) -> sqlite3.Connection:
    return sqlite3.connect(api.settings.state_dir / "metadata.db")


@contextmanager
def _edited(api: World, table: str, column: str, key: str, key_value: str, new: str) -> Iterator[None]:
    with _db(api) as db:
        (old,) = db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (key_value,)).fetchone()
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new, key_value))
    try:
        yield
    finally:
        with _db(api) as db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (old, key_value))


def _rehash(event: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    entry = AuditEntry(**{**{k: v for k, v in event.items() if k != "hash"}, "prev_hash": prev_hash})
    rehashed: dict[str, Any] = json.loads(AuditEntry(**{**entry.__dict__, "hash": entry.digest()}).to_json())
    return rehashed


# --- results and receipts --------------------------------------------------------------------------


def test_an_edited_result_names_the_row(api: World, job: str) -> None:
    result = result_of(api, job)
    result["rows"][2][1] = result["rows"][2][1] + 100
    with pytest.raises(IntegrityError, match=f"result of job {job}: row 2 differs"):
        verify_receipt(result["receipt"], trusted_keys(api), result=result)


def test_a_result_with_a_dropped_row_is_refused(api: World, job: str) -> None:
    result = result_of(api, job)
    del result["rows"][0]
    with pytest.raises(IntegrityError, match="rows were added or removed"):
        verify_receipt(result["receipt"], trusted_keys(api), result=result)


def test_an_edited_receipt_fails_its_signature(api: World, job: str) -> None:
    receipt = receipt_of(api, job)
    receipt["result"]["hash"] = "0" * 64
    with pytest.raises(
        IntegrityError, match=f"receipt for job {job}: signature does not verify under key {receipt['kid']}"
    ):
        verify_receipt(receipt, trusted_keys(api))


def test_a_receipt_signed_by_an_unknown_key(api: World, job: str) -> None:
    forger = generate_signing_key()
    receipt = receipt_of(api, job)
    forged = sign_receipt(forger, {k: v for k, v in receipt.items() if k not in {"kid", "signature"}})
    with pytest.raises(UnknownKey, match=f"signed by key {forger.kid}, which is not a trusted key"):
        verify_receipt(forged, trusted_keys(api))


def test_a_receipt_signed_by_an_expired_key(api: World, job: str) -> None:
    stolen = LocalKeyring.open(api.settings.keyring_path).current_signing_key()
    rotated = api.client.post("/v1/keys/signing/rotate", headers=api.h("admin"))
    assert rotated.status_code == 200
    assert rotated.json()["retired"] == stolen.kid
    receipt = receipt_of(api, job)
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    body = {k: v for k, v in receipt.items() if k not in {"kid", "signature"}}
    forged = sign_receipt(stolen, {**body, "signed_at": later})
    with pytest.raises(
        KeyNotValid, match=f"receipt for job {job}: signing key {stolen.kid} is valid from .* until"
    ):
        verify_receipt(forged, trusted_keys(api))
    verify_receipt(receipt, trusted_keys(api))  # the genuine receipt, signed before rotation, stays valid


# --- the audit log ---------------------------------------------------------------------------------


def test_an_edited_event_is_named(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["events"][7]["actor"] = "mallory"
    with pytest.raises(IntegrityError, match="seq 7: event edited"):
        verify_bundle(tampered)


def test_an_edited_and_rehashed_event_breaks_the_next_link(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    events = tampered["events"]
    events[7] = _rehash({**events[7], "actor": "mallory"}, events[7]["prev_hash"])
    with pytest.raises(IntegrityError, match="seq 8: link broken"):
        verify_bundle(tampered)


def test_a_rewritten_chain_contradicts_the_signed_checkpoints(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    events = tampered["events"]
    events[2] = {**events[2], "actor": "mallory"}
    for i in range(2, len(events)):  # every hash recomputed: the chain alone looks perfect
        events[i] = _rehash(events[i], events[i - 1]["hash"])
    with pytest.raises(IntegrityError, match=f"seq {EVERY - 1}: chain differs from the signed checkpoint"):
        verify_bundle(tampered)


def test_a_deleted_event_is_named(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    del tampered["events"][9]
    with pytest.raises(IntegrityError, match=r"seq 9: missing .*events were deleted"):
        verify_bundle(tampered)


def test_an_inserted_event_is_named(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["events"].insert(11, copy.deepcopy(tampered["events"][10]))
    with pytest.raises(IntegrityError, match="seq 10: appears 2 times; an event was inserted"):
        verify_bundle(tampered)


def test_reordered_events_are_named(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    events = tampered["events"]
    events[12], events[13] = events[13], events[12]
    with pytest.raises(IntegrityError, match="events were reordered"):
        verify_bundle(tampered)


def test_a_cut_tail_contradicts_the_signed_head(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    last = tampered["events"][-1]["seq"]
    del tampered["events"][-3:]
    # The first signed checkpoint past the cut (a stored one, or the head's own) gives it away; which
    # one that is depends on how many events the deployment's set-up logged.
    signed = [*tampered["checkpoints"], tampered["head"]["checkpoint"]]
    beyond = min(cp["seq"] for cp in signed if cp["seq"] > last - 3)
    with pytest.raises(
        IntegrityError,
        match=f"chain truncated: checkpoint at seq {beyond} but the chain ends at seq {last - 3}",
    ):
        verify_bundle(tampered)


def test_a_cut_tail_with_its_checkpoints_removed_needs_the_head_kept_elsewhere(
    bundle: dict[str, Any],
) -> None:
    tampered = copy.deepcopy(bundle)
    kept = tampered["head"]["hash"]
    del tampered["events"][-6:]
    end = tampered["events"][-1]["seq"]
    tampered["checkpoints"] = [c for c in tampered["checkpoints"] if c["seq"] <= end]
    tampered.pop("head")
    assert verify_bundle(tampered).last_seq == end  # undetectable from the bundle alone (docs/design.md §9)
    with pytest.raises(
        IntegrityError, match=f"chain truncated or rewritten: the expected head {kept} is not in it"
    ):
        verify_bundle(tampered, expected_head=kept)


def test_a_forged_checkpoint_is_named(bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["checkpoints"][1]["head_hash"] = "f" * 64
    seq = tampered["checkpoints"][1]["seq"]
    with pytest.raises(IntegrityError, match=f"checkpoint at seq {seq}: signature does not verify"):
        verify_bundle(tampered)


def test_a_bundle_whose_keys_were_swapped_fails_against_pinned_keys(bundle: dict[str, Any]) -> None:
    pinned = parse_keys(bundle["signing_keys"])
    impostor = generate_signing_key()
    tampered = copy.deepcopy(bundle)
    tampered["checkpoints"] = []
    tampered["head"]["checkpoint"] = {**tampered["head"]["checkpoint"], "kid": impostor.kid}
    with pytest.raises(UnknownKey, match=f"signed by unknown key {impostor.kid}"):
        verify_bundle(tampered, trusted_keys=pinned)


# --- data, scopes and stored records, found by replay ----------------------------------------------


def _part(api: World, dataset: str, version: str, index: int = 0) -> Path:
    return api.settings.data_dir / DOMAIN / dataset / version / "citizens" / f"part-{index:05d}.enc"


@contextmanager
def _swapped(target: Path, source: Path) -> Iterator[None]:
    saved = target.read_bytes()
    shutil.copyfile(source, target)
    try:
        yield
    finally:
        target.write_bytes(saved)


def test_a_part_swapped_in_from_another_version_is_named(api: World, job: str) -> None:
    answer = upload(
        api.client,
        api.tokens["stu"],
        files={"citizens": ("c.csv", csv_bytes(citizens_table(seed=8)), "text/csv")},
    )
    assert answer.status_code == 201, answer.text
    other = answer.json()["version"]["version_id"]
    with _swapped(_part(api, DATASET, api.dataset_version), _part(api, DATASET, other)):
        report = replay(api, job)
    assert report["outcome"] == "mismatch"
    assert [m["field"] for m in report["mismatches"]] == ["data"]
    assert (
        f"part 0 (part-00000.enc) of table 'citizens' in {DOMAIN}/{DATASET} version {api.dataset_version} "
        "failed authentication"
    ) in report["message"]
    assert replay(api, job)["outcome"] == "match"  # restored


def test_a_part_swapped_in_from_another_dataset_is_named(api: World, job: str) -> None:
    created = api.client.post(
        "/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": OTHER_DATASET}
    )
    assert created.status_code == 201, created.text
    answer = upload(
        api.client,
        api.tokens["stu"],
        dataset=OTHER_DATASET,
        manifest=CITIZENS_MANIFEST,
        files={"citizens": ("c.csv", csv_bytes(citizens_table(seed=9)), "text/csv")},
    )
    assert answer.status_code == 201, answer.text
    other = answer.json()["version"]["version_id"]
    with _swapped(_part(api, DATASET, api.dataset_version, 1), _part(api, OTHER_DATASET, other, 1)):
        report = replay(api, job)
    assert report["outcome"] == "mismatch"
    assert f"part 1 (part-00001.enc) of table 'citizens' in {DOMAIN}/{DATASET}" in report["message"]


def test_a_scope_edited_after_the_job_ran_is_named(api: World, job: str) -> None:
    with _db(api) as db:
        (document,) = db.execute(
            "SELECT document FROM scope_versions WHERE version_id = ?", (api.scope_version,)
        ).fetchone()
    edited = json.loads(document)
    edited["disclosure"]["min_units"] = 1
    with _edited(api, "scope_versions", "document", "version_id", api.scope_version, json.dumps(edited)):
        report = replay(api, job)
    assert report["outcome"] == "mismatch"
    fields = [m["field"] for m in report["mismatches"]]
    assert fields[0] == "scope.version_id"
    assert (
        f"the stored document of scope 'flu-study' version {api.scope_version} now hashes to"
        in report["message"]
    )
    assert "the scope was edited after the job ran" in report["message"]
    # Replaying under the edited document releases the small district too: the hashes differ as well.
    assert "result.hash" in fields


def test_a_stored_query_edited_after_the_job_ran_is_named(api: World, job: str) -> None:
    with _edited(api, "jobs", "sql", "id", job, "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex"):
        report = replay(api, job)
    assert report["outcome"] == "mismatch"
    assert report["mismatches"][0]["field"] == "query.original_sha256"
    assert (
        f"the stored query of job {job} no longer hashes to the signed query.original_sha256"
        in report["message"]
    )


def test_a_receipt_edited_in_the_database_is_named(api: World, job: str) -> None:
    receipt = receipt_of(api, job)
    receipt["operator"] = "mallory"
    with _edited(api, "receipts", "document", "job_id", job, json.dumps(receipt)):
        report = replay(api, job)
    assert report["outcome"] == "mismatch"
    assert report["mismatches"][0]["field"] == "receipt.signature"
    assert f"receipt for job {job}: signature does not verify" in report["message"]
