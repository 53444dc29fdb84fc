"""A whole deployment under the ``gm`` profile: upload, release, a receipt signed with SM2 and verified
offline, an SM3 audit chain with SM2 checkpoints verified offline, and replay to a match."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.audit import CHECKPOINT_TYPE_GM, EVENT_FORMAT_GM
from crypto.errors import CryptoError, IntegrityError
from crypto.keyring import LocalKeyring
from crypto.profile import aead_for_key, profile_named
from crypto.shredding import VersionKeys
from crypto.signing import SM2
from crypto.sm import sm3_hex
from sandbox_api.client.verify import verify_bundle, verify_receipt
from sandbox_api.receipt_format import RECEIPT_TYPE_GM, RECEIPT_TYPE_V2
from sandbox_api.server.app import create_app
from sandbox_api.server.services.scopes import parse_stored
from tests.sandbox_api.api_helpers import DOMAIN, SCOPE, World, make_settings
from tests.sandbox_api.auditing_helpers import receipt_of, release, replay, result_of, trusted_keys
from tests.sandbox_api.replay_helpers import replayed_world

EVERY = 5


@pytest.fixture(scope="module")
def gm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("gm")
    with replayed_world(state, crypto_profile="gm", audit_checkpoint_every=EVERY) as deployment:
        yield deployment


def test_a_released_job_has_an_sm2_receipt_that_verifies_offline_and_names_its_profile(gm: World) -> None:
    job_id = release(gm)
    result = result_of(gm, job_id)
    receipt = receipt_of(gm, job_id)
    assert receipt["type"] == RECEIPT_TYPE_GM
    assert receipt["profile"] == "gm"
    keys = trusted_keys(gm)
    assert keys[receipt["kid"]].algorithm == SM2
    report = verify_receipt(receipt, keys, result=result)
    assert report.profile == "gm"
    assert report.result_checked
    assert report.job_id == job_id


def test_an_edited_gm_receipt_or_one_relabelled_as_international_fails_offline(gm: World) -> None:
    job_id = release(gm)
    receipt, keys = receipt_of(gm, job_id), trusted_keys(gm)
    edited = {**receipt, "operator": "mallory"}
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_receipt(edited, keys)
    relabelled = {k: v for k, v in receipt.items() if k != "profile"} | {"type": RECEIPT_TYPE_V2}
    with pytest.raises(IntegrityError, match="signed with ed25519"):
        verify_receipt(relabelled, keys)


def test_the_audit_chain_is_sm3_with_sm2_checkpoints_and_verifies_offline(gm: World) -> None:
    release(gm)
    answer = gm.client.get("/v1/audit/bundle", headers=gm.h("audra"))
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert {e["format"] for e in bundle["events"]} == {EVENT_FORMAT_GM}
    assert bundle["checkpoints"]
    assert {c["type"] for c in bundle["checkpoints"]} == {CHECKPOINT_TYPE_GM}
    report = verify_bundle(bundle)
    assert report.count == len(bundle["events"])
    assert report.checkpoints >= 1
    events = bundle["events"]
    events[1] = {**events[1], "actor": "mallory"}
    with pytest.raises(IntegrityError, match="seq 1: event edited"):
        verify_bundle(bundle)


def test_a_gm_release_replays_to_a_match(gm: World) -> None:
    job_id = release(gm)
    assert replay(gm, job_id)["outcome"] == "match"


def test_a_gm_deployment_refuses_to_start_under_the_international_profile(gm: World) -> None:
    settings = make_settings(Path(gm.settings.state_dir), crypto_profile="international")
    with pytest.raises(CryptoError, match="initialised under another profile"):
        create_app(settings)


def test_gm_data_keys_key_encryption_keys_and_the_shredding_layer_are_sm4(gm: World) -> None:
    state = Path(gm.settings.state_dir)
    keys = LocalKeyring.open(state / "keyring.json")
    with sqlite3.connect(state / "metadata.db") as db:
        stored, key_aad = db.execute("SELECT wrapped_key, key_aad FROM dataset_versions").fetchone()
    with pytest.raises(IntegrityError):  # the shredding layer is SM4 too: no AES-256 key opens it
        VersionKeys(keys).open(key_aad, stored)
    wrapped = VersionKeys(keys, key_of=profile_named("gm").aead_key).open(key_aad, stored)
    data_key = keys.unwrap(DOMAIN, wrapped, aad=key_aad.encode())
    assert aead_for_key(data_key).name == "SM4-GCM"
    document = json.loads((state / "keyring.json").read_text())
    assert {len(base64.b64decode(k["key"])) for k in document["domains"][DOMAIN]} == {16}


def test_gm_rotations_keep_sm2_and_sm4_and_what_was_signed_or_sealed_before_still_verifies(
    tmp_path: Path,
) -> None:
    with replayed_world(tmp_path, crypto_profile="gm") as deployment:
        before = release(deployment)
        rotated = deployment.client.post("/v1/keys/signing/rotate", headers=deployment.h("admin"))
        assert rotated.status_code == 200, rotated.text
        after = release(deployment)
        keys = trusted_keys(deployment)
        assert {k.algorithm for k in keys.values()} == {SM2}
        assert len(keys) == 2
        old, new = receipt_of(deployment, before), receipt_of(deployment, after)
        assert old["kid"] != new["kid"]
        for receipt in (old, new):
            assert verify_receipt(receipt, keys).profile == "gm"
        # A domain key rotation re-wraps every data key under a new SM4 KEK, behind the SM4 shredding
        # layer; the released jobs still replay to a match when the deployment closes.
        rotated_kek = deployment.client.post(
            f"/v1/domains/{DOMAIN}/keys/rotate", headers=deployment.h("admin")
        )
        assert rotated_kek.status_code == 200, rotated_kek.text
        document = json.loads((tmp_path / "keyring.json").read_text())
        assert [len(base64.b64decode(k["key"])) for k in document["domains"][DOMAIN]] == [16, 16]


def test_gm_scope_version_ids_are_sm3_of_the_canonical_scope(gm: World) -> None:
    answer = gm.client.get(f"/v1/scopes/{SCOPE}", headers=gm.h("olga"))
    assert answer.status_code == 200, answer.text
    with sqlite3.connect(Path(gm.settings.state_dir) / "metadata.db") as db:
        (document,) = db.execute(
            "SELECT document FROM scope_versions WHERE version_id = ?", (gm.scope_version,)
        ).fetchone()
    scope = parse_stored(document)
    assert gm.scope_version == sm3_hex(scope.canonical_json().encode("utf-8"))
    assert gm.scope_version != scope.version_id  # the international (SHA-256) id of the same scope
