"""Key lifecycle: KEK rotation re-wraps without re-encrypting; crypto-shredding makes data unrecoverable;
no key material ever leaves in a response, a log line, an error or the audit log."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.errors import CryptoError
from crypto.keyring import LocalKeyring, kek_id_of
from crypto.shredding import VersionKeys
from tests.sandbox_api.api_helpers import DATASET, DOMAIN, OTHER_DOMAIN, World, world
from tests.sandbox_api.auditing_helpers import receipt_of, release, replay, result_of


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # This module destroys data: it gets a deployment of its own.
    with world(tmp_path_factory.mktemp("keys")) as deployment:
        yield deployment


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _wrapped_keys(api: World) -> dict[str, bytes]:
    with sqlite3.connect(api.settings.state_dir / "metadata.db") as db:
        return {v: bytes(k) for v, k in db.execute("SELECT version_id, wrapped_key FROM dataset_versions")}


def _keyring(api: World) -> LocalKeyring:
    return LocalKeyring.open(api.settings.keyring_path)


def _encodings(secret: bytes) -> set[bytes]:
    b64 = base64.b64encode(secret)
    return {
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    }


def _kek_wrapped(api: World, version: str, stored: bytes) -> bytes:
    """The KEK-wrapped data key inside a stored value (sealed under the version's own secret)."""
    return VersionKeys(_keyring(api)).open(f"{DOMAIN}/{DATASET}/{version}", stored)


def _data_key(api: World, version: str) -> bytes:
    wrapped = _kek_wrapped(api, version, _wrapped_keys(api)[version])
    return _keyring(api).unwrap(DOMAIN, wrapped, aad=f"{DOMAIN}/{DATASET}/{version}".encode())


def test_kek_rotation_rewraps_data_keys_and_leaves_the_data_untouched(api: World) -> None:
    job_before = release(api)
    data_before = _files(api.settings.data_dir)
    wrapped_before = _wrapped_keys(api)
    key_before = _data_key(api, api.dataset_version)

    answer = api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin"))
    assert answer.status_code == 200, answer.text
    new_kek = answer.json()["kek_id"]
    assert answer.json()["rewrapped_versions"] == 1

    assert _files(api.settings.data_dir) == data_before  # not one byte of data re-encrypted
    wrapped_after = _wrapped_keys(api)
    assert wrapped_after[api.dataset_version] != wrapped_before[api.dataset_version]
    version = api.dataset_version
    assert kek_id_of(_kek_wrapped(api, version, wrapped_after[version])) == new_kek
    assert _data_key(api, api.dataset_version) == key_before  # the same data key, wrapped anew
    states = {k.kid: k.state for k in _keyring(api).domain_keys(DOMAIN)}
    assert states[new_kek] == "current"
    assert states[kek_id_of(_kek_wrapped(api, version, wrapped_before[version]))] == "retired"

    job_after = release(api)
    assert result_of(api, job_after)["result_hash"] == result_of(api, job_before)["result_hash"]
    rotated = api.audit_events("key.rotated")[-1]
    assert rotated["details"] == {"domain": DOMAIN, "kek_id": new_kek, "rewrapped_versions": 1}


def test_no_key_material_in_responses_logs_errors_or_the_audit_log(
    api: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job_id = release(api)
    texts = [
        api.client.get("/v1/keys/signing").text,
        api.client.post("/v1/keys/signing/rotate", headers=api.h("admin")).text,
        api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin")).text,
        api.client.get("/v1/domains", headers=api.h("admin")).text,
        api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("audra")).text,
        api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice")).text,
        api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).text,
        api.client.get(f"/v1/jobs/{job_id}/receipt", headers=api.h("audra")).text,
        api.client.post(f"/v1/jobs/{job_id}/replay", headers=api.h("audra")).text,
        api.client.get("/v1/audit/head", headers=api.h("audra")).text,
        api.client.get("/v1/audit/bundle", headers=api.h("audra")).text,
        api.client.get("/v1/audit/export", headers=api.h("audra")).text,
        # refusals and errors
        api.client.get("/v1/audit/bundle", headers={"Authorization": "Bearer wrong"}).text,
        api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("stu")).text,
        api.client.post("/v1/domains/nowhere/keys/rotate", headers=api.h("admin")).text,
        api.client.post(f"/v1/datasets/{DOMAIN}/{DATASET}/versions/nope/shred", headers=api.h("stu")).text,
        api.client.post("/v1/jobs/nope/replay", headers=api.h("audra")).text,
    ]
    keyring = _keyring(api)
    try:  # an unwrap under the wrong associated data: its error text must not carry the key either
        keyring.unwrap(DOMAIN, _wrapped_keys(api)[api.dataset_version], aad=b"elsewhere")
    except CryptoError as exc:
        texts.append(exc.detail)
    texts.extend(record.getMessage() for record in caplog.records)
    haystack = "\n".join(texts).encode()

    document = json.loads(api.settings.keyring_path.read_text())
    secrets = [base64.b64decode(k["key"]) for keks in document["domains"].values() for k in keks]
    secrets += [base64.b64decode(s["key"]) for s in document["secrets"].values()]
    secrets += [base64.b64decode(k["private"]) for k in document["signing_keys"]]
    secrets += [_data_key(api, api.dataset_version)]
    secrets += list(_wrapped_keys(api).values())
    assert len(secrets) >= 8
    leaked = [
        hashlib.sha256(s).hexdigest()[:8] for s in secrets for form in _encodings(s) if form in haystack
    ]
    assert leaked == []
    # The scan is able to find what it looks for.
    assert any(
        form in haystack for form in _encodings(base64.b64decode(document["signing_keys"][0]["public"]))
    )


def test_only_the_domains_steward_or_an_admin_may_shred(api: World) -> None:
    path = f"/v1/datasets/{DOMAIN}/{DATASET}/versions/{api.dataset_version}/shred"
    for who in ("cleo", "alice", "audra", "olga"):
        answer = api.client.post(path, headers=api.h(who), json={"reason": "try"})
        assert answer.status_code == 403, (who, answer.text)
    denied = {e["actor"] for e in api.audit_events("request.denied") if e["details"].get("path") == path}
    assert denied == {"cleo", "alice", "audra", "olga"}
    assert (
        api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("stu")).json()["versions"][0][
            "state"
        ]
        == "active"
    )


def test_a_shredded_version_is_unrecoverable_with_everything_left_on_disk(api: World) -> None:
    job_id = release(api)
    version = api.dataset_version
    data_key = _data_key(api, version)
    wrapped_now = _wrapped_keys(api)[version]
    rotated = api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin"))
    wrapped_blobs = {wrapped_now, _wrapped_keys(api)[version]}
    assert rotated.status_code == 200
    assert len(wrapped_blobs) == 2
    # The search below finds a wrapped key while one exists.
    assert _wrapped_keys(api)[version] in b"\n".join(_files(api.settings.state_dir).values())

    answer = api.client.post(
        f"/v1/datasets/{DOMAIN}/{DATASET}/versions/{version}/shred",
        headers=api.h("stu"),
        json={"reason": "retention period ended"},
    )
    assert answer.status_code == 200, answer.text
    shredded = answer.json()
    assert shredded["shredded_by"] == "stu"
    assert shredded["state"] == "shredded"

    # The attacker holds the whole state directory: database (and its WAL), keyring with every KEK, parts.
    everything = _files(api.settings.state_dir)
    assert any(name.endswith(".enc") for name in everything)  # the ciphertext is still there
    blob = b"\n".join(everything.values())
    for secret in (data_key, *wrapped_blobs):
        assert not any(form in blob for form in _encodings(secret)), "key material left on disk"
    # Every wrapped-key header left anywhere, at every plausible length, under every KEK: none unwraps.
    keyring = _keyring(api)
    aad = f"{DOMAIN}/{DATASET}/{version}".encode()
    start = blob.find(b"DSW1")
    while start != -1:
        for length in range(40, 120):
            with pytest.raises(CryptoError):
                keyring.unwrap(DOMAIN, blob[start : start + length], aad=aad)
        start = blob.find(b"DSW1", start + 1)
    # And every stored-key header (the version layer): its secret is gone, so none opens.
    version_keys = VersionKeys(keyring)
    start = blob.find(b"DSV1")
    while start != -1:
        for length in range(60, 160):
            with pytest.raises(CryptoError):
                version_keys.open(aad.decode(), blob[start : start + length])
        start = blob.find(b"DSV1", start + 1)

    again = api.client.post(
        f"/v1/datasets/{DOMAIN}/{DATASET}/versions/{version}/shred", headers=api.h("admin"), json={}
    )
    assert again.status_code == 200
    assert again.json()["shredded_by"] == "stu"
    events = [e for e in api.audit_events("dataset.version.shredded") if e["details"]["version"] == version]
    assert [(e["actor"], e["details"]["reason"]) for e in events] == [("stu", "retention period ended")]
    listed = api.client.get(f"/v1/datasets/{DOMAIN}/{DATASET}", headers=api.h("stu")).json()
    assert listed["versions"][0]["state"] == "shredded"
    assert listed["current_version"] is None

    report = replay(api, job_id)
    assert report["outcome"] == "data-destroyed"
    assert report["match"] is False
    assert (
        f"version {version} of {DOMAIN}/{DATASET} was crypto-shredded at {shredded['shredded_at']} by stu"
        in (report["message"])
    )
    assert "retention period ended" in report["message"]
    assert report["destroyed"] == [
        {
            "dataset": f"{DOMAIN}/{DATASET}",
            "version_id": version,
            "shredded_at": shredded["shredded_at"],
            "shredded_by": "stu",
            "reason": "retention period ended",
        }
    ]
    replayed = [e for e in api.audit_events("job.replayed") if e["details"]["job"] == job_id]
    assert replayed[-1]["details"]["outcome"] == "data-destroyed"
    # Its receipt stays valid: the release happened, only the data is gone.
    assert receipt_of(api, job_id)["datasets"] == {f"{DOMAIN}/{DATASET}": version}
    # A later KEK rotation skips it (there is no key left to re-wrap).
    later = api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin"))
    assert later.status_code == 200
    assert later.json()["rewrapped_versions"] == 0


def test_a_steward_of_another_domain_cannot_shred_even_its_own_named_data(api: World) -> None:
    answer = api.client.post(
        f"/v1/datasets/{OTHER_DOMAIN}/{DATASET}/versions/x/shred", headers=api.h("stu"), json={}
    )
    assert answer.status_code == 403
