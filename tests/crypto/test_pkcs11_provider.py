"""The PKCS#11 key provider against a real SoftHSM2 token: KEKs and the signing key never leave it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import AttributeSensitive, KeyUnextractable

from crypto.errors import CryptoError, IntegrityError, KeyDestroyed, UnknownKey
from crypto.key_provider import DeploymentKeys, KeyProvider
from crypto.pkcs11_provider import Pkcs11KeyProvider, require_profile
from crypto.shredding import VersionKeys
from crypto.signing import ED25519, key_id, verify
from crypto.wrapped_key import kek_id_of
from tests.softhsm import softhsm_token

AAD = b"dataset:7/version:3"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def provider() -> Iterator[Pkcs11KeyProvider]:
    token = softhsm_token()
    opened = Pkcs11KeyProvider.open(token.library, token_label=token.label, pin=token.pin)
    yield opened
    opened.close()


@pytest.fixture
def domain() -> str:
    return f"hospital-{secrets.token_hex(4)}"  # the token is shared by the process: keep tests apart


def test_pkcs11_provider_is_a_key_provider_and_a_deployment_key_store(provider: Pkcs11KeyProvider) -> None:
    assert isinstance(provider, KeyProvider)
    assert isinstance(provider, DeploymentKeys)


def test_wrong_pin_is_refused_while_the_process_is_logged_in(provider: Pkcs11KeyProvider) -> None:
    token = softhsm_token()
    with pytest.raises(CryptoError, match="PinIncorrect"):
        Pkcs11KeyProvider.open(token.library, token_label=token.label, pin=token.pin + "0")


def test_wrap_unwrap_round_trip(provider: Pkcs11KeyProvider, domain: str) -> None:
    kid = provider.ensure_domain(domain)
    data_key = secrets.token_bytes(32)
    wrapped = provider.wrap(domain, data_key, aad=AAD)
    assert kek_id_of(wrapped) == kid
    assert data_key not in wrapped
    assert provider.unwrap(domain, wrapped, aad=AAD) == data_key
    assert provider.ensure_domain(domain) == kid  # idempotent


def test_wrapped_keys_are_readable_from_a_new_session(provider: Pkcs11KeyProvider, domain: str) -> None:
    provider.ensure_domain(domain)
    wrapped = provider.wrap(domain, b"k" * 32, aad=AAD)
    token = softhsm_token()
    other = Pkcs11KeyProvider.open(token.library, token_label=token.label, pin=token.pin)
    try:
        assert other.unwrap(domain, wrapped, aad=AAD) == b"k" * 32
    finally:
        other.close()


@pytest.mark.parametrize("position", [-1, -20, -40])
def test_tampered_wrapped_key_is_refused(provider: Pkcs11KeyProvider, domain: str, position: int) -> None:
    provider.ensure_domain(domain)
    wrapped = bytearray(provider.wrap(domain, secrets.token_bytes(32), aad=AAD))
    wrapped[position] ^= 0x01
    with pytest.raises(IntegrityError, match="failed authentication"):
        provider.unwrap(domain, bytes(wrapped), aad=AAD)


def test_wrong_aad_is_refused(provider: Pkcs11KeyProvider, domain: str) -> None:
    provider.ensure_domain(domain)
    wrapped = provider.wrap(domain, secrets.token_bytes(32), aad=AAD)
    with pytest.raises(IntegrityError):
        provider.unwrap(domain, wrapped, aad=b"dataset:7/version:4")


def test_another_domain_cannot_unwrap(provider: Pkcs11KeyProvider, domain: str) -> None:
    provider.ensure_domain(domain)
    provider.ensure_domain(domain + "-other")
    wrapped = provider.wrap(domain, secrets.token_bytes(32), aad=AAD)
    with pytest.raises(UnknownKey, match="has no key-encryption key"):
        provider.unwrap(domain + "-other", wrapped, aad=AAD)


def test_wrap_before_ensure_domain_is_refused(provider: Pkcs11KeyProvider, domain: str) -> None:
    with pytest.raises(UnknownKey):
        provider.wrap(domain, b"k" * 32, aad=AAD)
    with pytest.raises(UnknownKey):
        provider.rotate(domain)


def test_rotation_keeps_old_keys_readable_and_rewrap_moves_them(
    provider: Pkcs11KeyProvider, domain: str
) -> None:
    first = provider.ensure_domain(domain)
    data_key = secrets.token_bytes(32)
    old = provider.wrap(domain, data_key, aad=AAD)
    second = provider.rotate(domain)
    assert second != first
    assert provider.ensure_domain(domain) == second
    assert provider.domain_keys(domain) == sorted([(first, False), (second, True)])
    assert provider.unwrap(domain, old, aad=AAD) == data_key
    assert kek_id_of(provider.wrap(domain, data_key, aad=AAD)) == second
    moved = provider.rewrap(domain, old, aad=AAD)
    assert kek_id_of(moved) == second
    assert provider.unwrap(domain, moved, aad=AAD) == data_key


def test_retired_kek_can_no_longer_encrypt(provider: Pkcs11KeyProvider, domain: str) -> None:
    first = provider.ensure_domain(domain)
    provider.rotate(domain)
    assert provider.kek_object(domain, first)[Attribute.ENCRYPT] is False
    assert provider.kek_object(domain, first)[Attribute.DECRYPT] is True


def test_kek_is_non_extractable_and_its_value_unreadable(provider: Pkcs11KeyProvider, domain: str) -> None:
    kid = provider.ensure_domain(domain)
    kek = provider.kek_object(domain, kid)
    assert kek[Attribute.EXTRACTABLE] is False
    assert kek[Attribute.SENSITIVE] is True
    with pytest.raises(AttributeSensitive):
        kek[Attribute.VALUE]


def test_kek_cannot_be_wrapped_out_of_the_token_under_an_attackers_key(
    provider: Pkcs11KeyProvider, domain: str
) -> None:
    # The attack: a logged-in caller makes a wrapping key of its own and asks the token to export the
    # KEK under it (C_WrapKey), to decrypt it outside. CKA_EXTRACTABLE false makes the token refuse.
    kek = provider.kek_object(domain, provider.ensure_domain(domain))
    with provider.lock:
        attacker = provider._session.generate_key(
            KeyType.AES, 256, template={Attribute.WRAP: True, Attribute.EXTRACTABLE: True}
        )
        with pytest.raises(KeyUnextractable):
            attacker.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)


def test_signature_verifies_with_the_public_key_through_the_normal_verifier(
    provider: Pkcs11KeyProvider,
) -> None:
    signer = provider.ensure_signing_key(now=NOW)
    assert signer.algorithm == ED25519
    assert signer.kid == key_id(signer.public)
    signature = signer.sign(b"receipt bytes")
    verify(signer.public, b"receipt bytes", signature)
    with pytest.raises(IntegrityError):
        verify(signer.public, b"receipt bytes!", signature)


def test_signing_key_is_stable_and_its_private_half_cannot_be_read(provider: Pkcs11KeyProvider) -> None:
    signer = provider.ensure_signing_key(now=NOW)
    assert provider.ensure_signing_key(now=NOW).kid == signer.kid
    assert provider.current_signing_key().kid == signer.kid
    private = signer.key_object
    assert private[Attribute.EXTRACTABLE] is False
    with pytest.raises(AttributeSensitive):
        private[Attribute.VALUE]


def test_signing_key_rotation_keeps_old_keys_published(provider: Pkcs11KeyProvider) -> None:
    old = provider.ensure_signing_key(now=NOW)
    old_signature = old.sign(b"old receipt")
    # The token is shared by the test process: rotate after whatever key another test made current.
    later = max([NOW, *(record.not_before for record in provider.signing_keys())]) + timedelta(days=1)
    new = provider.rotate_signing_key(now=later)
    assert new.kid != old.kid
    assert provider.current_signing_key().kid == new.kid
    records = {record.kid: record for record in provider.signing_keys()}
    assert records[old.kid].not_after == later
    assert records[old.kid].state == "retired"
    assert records[new.kid].not_before == later
    assert records[new.kid].not_after is None
    assert records[old.kid].valid_at(later - timedelta(seconds=1))
    verify(records[old.kid].public, b"old receipt", old_signature)
    with pytest.raises(CryptoError, match="refused to sign"):
        old.sign(b"after rotation")


def test_only_ed25519_signing_keys_are_made(provider: Pkcs11KeyProvider) -> None:
    with pytest.raises(CryptoError, match="signs with ed25519"):
        provider.ensure_signing_key(now=NOW, algorithm="sm2")


def test_domains_lists_those_with_a_kek(provider: Pkcs11KeyProvider, domain: str) -> None:
    assert domain not in provider.domains()
    provider.ensure_domain(domain)
    assert domain in provider.domains()


def test_named_secrets_are_stable_distinct_and_survive_a_new_session(provider: Pkcs11KeyProvider) -> None:
    name = f"pseudonym-{secrets.token_hex(4)}"
    first = provider.secret(name)
    assert len(first) == 32
    assert provider.secret(name) == first
    assert provider.secret(name + "-other") != first
    token = softhsm_token()
    other = Pkcs11KeyProvider.open(token.library, token_label=token.label, pin=token.pin)
    try:
        assert other.existing_secret(name) == first
    finally:
        other.close()


def test_destroyed_secret_is_gone_for_good(provider: Pkcs11KeyProvider) -> None:
    name = f"version-{secrets.token_hex(4)}"
    assert provider.existing_secret(name) is None
    first = provider.secret(name)
    assert provider.destroy_secret(name) is True
    assert provider.existing_secret(name) is None
    assert provider.destroy_secret(name) is False
    assert provider.secret(name) != first  # a new secret, never the destroyed one


def test_version_keys_shred_through_the_token(provider: Pkcs11KeyProvider, domain: str) -> None:
    provider.ensure_domain(domain)
    versions = VersionKeys(provider)
    key_aad = f"{domain}/citizens/v{secrets.token_hex(2)}"
    stored = versions.seal(key_aad, provider.wrap(domain, b"d" * 32, aad=key_aad.encode()))
    assert provider.unwrap(domain, versions.open(key_aad, stored), aad=key_aad.encode()) == b"d" * 32
    assert versions.destroy(key_aad) is True
    with pytest.raises(KeyDestroyed):
        versions.open(key_aad, stored)


def test_wrong_pin_is_refused() -> None:
    token = softhsm_token()
    with pytest.raises(CryptoError, match="cannot open PKCS#11 token"):
        Pkcs11KeyProvider.open(token.library, token_label=token.label, pin="wrong-pin")


def test_only_the_international_profile_is_served() -> None:
    require_profile("international")
    with pytest.raises(CryptoError, match="only the 'international' profile"):
        require_profile("gm")
