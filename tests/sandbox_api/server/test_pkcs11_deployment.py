"""A deployment initialised with ``key_provider: pkcs11`` (a SoftHSM2 token): its domain KEKs and its
signing key are in the token, not in a keyring file, a released job's receipt verifies offline, rotations
happen in the token, and every release replays to a match."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.errors import CryptoError
from crypto.pkcs11_provider import Pkcs11KeyProvider
from crypto.shredding import VersionKeys
from crypto.wrapped_key import kek_id_of
from sandbox_api.client.verify import verify_receipt
from sandbox_api.server.app import create_app
from sandbox_api.server.bootstrap import init_deployment, token_pin
from sandbox_api.server.settings import PKCS11_PIN_VARIABLE, Settings, unknown_environment
from tests.sandbox_api.api_helpers import DOMAIN, World, make_settings
from tests.sandbox_api.auditing_helpers import receipt_of, release, result_of, trusted_keys
from tests.sandbox_api.replay_helpers import replayed_world
from tests.softhsm import softhsm_token


def token_settings(state: Path) -> dict[str, object]:
    token = softhsm_token()
    pin_file = state.parent / f"{state.name}.pin"
    pin_file.write_text(token.pin + "\n", encoding="utf-8")
    pin_file.chmod(0o600)
    return {
        "key_provider": "pkcs11",
        "pkcs11_library": token.library,
        "pkcs11_token_label": token.label,
        "pkcs11_pin_file": pin_file,
    }


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("hsm") / "state"
    with replayed_world(state, **token_settings(state)) as deployment:  # every release replays to a match
        yield deployment


@pytest.fixture
def token() -> Iterator[Pkcs11KeyProvider]:
    found = softhsm_token()
    provider = Pkcs11KeyProvider.open(found.library, token_label=found.label, pin=found.pin)
    yield provider
    provider.close()


def test_a_released_job_has_a_receipt_signed_in_the_token_that_verifies_offline(
    hsm: World, token: Pkcs11KeyProvider
) -> None:
    job_id = release(hsm)
    receipt = receipt_of(hsm, job_id)
    assert receipt["kid"] == token.current_signing_key().kid
    report = verify_receipt(receipt, trusted_keys(hsm), result=result_of(hsm, job_id))
    assert report.job_id == job_id
    assert report.result_checked


def test_no_keyring_file_is_written_and_the_domain_kek_is_in_the_token(
    hsm: World, token: Pkcs11KeyProvider
) -> None:
    assert not Path(hsm.settings.state_dir, "keyring.json").exists()
    assert DOMAIN in token.domains()
    assert any(current for _, current in token.domain_keys(DOMAIN))


def test_dataset_keys_are_wrapped_by_a_token_kek(hsm: World, token: Pkcs11KeyProvider) -> None:
    with sqlite3.connect(Path(hsm.settings.state_dir, "metadata.db")) as db:
        stored, key_aad = db.execute("SELECT wrapped_key, key_aad FROM dataset_versions").fetchone()
    wrapped = VersionKeys(token).open(key_aad, stored)
    assert kek_id_of(wrapped) in {kid for kid, _ in token.domain_keys(DOMAIN)}
    assert len(token.unwrap(DOMAIN, wrapped, aad=key_aad.encode())) == 32


def test_a_pkcs11_deployment_refuses_to_start_on_the_local_keyring(hsm: World) -> None:
    settings = make_settings(Path(hsm.settings.state_dir))
    with pytest.raises(CryptoError, match="initialised with key_provider pkcs11"):
        create_app(settings)


def test_pkcs11_settings_need_the_token_and_the_international_profile(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs pkcs11_library and pkcs11_token_label"):
        Settings(state_dir=tmp_path, key_provider="pkcs11")
    with pytest.raises(ValueError, match="international profile only"):
        Settings(state_dir=tmp_path, crypto_profile="gm", **token_settings(tmp_path / "gm"))


def test_pkcs11_settings_need_the_local_executor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the local executor"):
        Settings(state_dir=tmp_path, executor="ray", **token_settings(tmp_path / "ray"))


def test_the_pin_is_an_environment_variable_or_a_file_never_a_setting() -> None:
    assert unknown_environment({PKCS11_PIN_VARIABLE: "1234"}) == []
    assert not any("pin" in name and name != "pkcs11_pin_file" for name in Settings.model_fields)


def test_the_pin_comes_from_the_environment_without_a_pin_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, **{**token_settings(tmp_path / "env"), "pkcs11_pin_file": None})
    monkeypatch.delenv(PKCS11_PIN_VARIABLE, raising=False)
    with pytest.raises(CryptoError, match=f"set pkcs11_pin_file or {PKCS11_PIN_VARIABLE}"):
        token_pin(settings)
    monkeypatch.setenv(PKCS11_PIN_VARIABLE, softhsm_token().pin)
    assert token_pin(settings) == softhsm_token().pin


def test_a_wrong_pin_is_refused_at_init(tmp_path: Path) -> None:
    overrides = token_settings(tmp_path / "state")
    Path(str(overrides["pkcs11_pin_file"])).write_text("not-the-pin\n", encoding="utf-8")
    with pytest.raises(CryptoError, match="cannot open PKCS#11 token"):
        init_deployment(make_settings(tmp_path / "state", **overrides))


def test_rotations_through_the_api_happen_in_the_token_and_older_receipts_still_verify(
    hsm: World, token: Pkcs11KeyProvider
) -> None:
    before = release(hsm)
    old_keks = {kid for kid, _ in token.domain_keys(DOMAIN)}
    rotated = hsm.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=hsm.h("admin"))
    assert rotated.status_code == 200, rotated.text
    current = [kid for kid, is_current in token.domain_keys(DOMAIN) if is_current]
    assert len(current) == 1
    assert current[0] not in old_keks
    signing = hsm.client.post("/v1/keys/signing/rotate", headers=hsm.h("admin"))
    assert signing.status_code == 200, signing.text
    after = release(hsm)  # reads the dataset through the rewrapped key
    old, new = receipt_of(hsm, before), receipt_of(hsm, after)
    assert old["kid"] != new["kid"]
    assert new["kid"] == token.current_signing_key().kid
    keys = trusted_keys(hsm)
    for job_id, receipt in ((before, old), (after, new)):
        assert verify_receipt(receipt, keys, result=result_of(hsm, job_id)).job_id == job_id
