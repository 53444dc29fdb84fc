"""Ed25519 signatures (RFC 8032) and published key records with validity periods."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import CryptoError, IntegrityError, KeyNotValid
from crypto.signing import (
    SigningKeyPair,
    SigningKeyRecord,
    generate_signing_key,
    key_id,
    public_key_of,
    sign,
    verify,
)

# RFC 8032 §7.1, TEST 1 (empty message).
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_rfc8032_test_vector_1() -> None:
    assert public_key_of(RFC_SECRET) == RFC_PUBLIC
    assert sign(RFC_SECRET, b"") == RFC_SIGNATURE
    verify(RFC_PUBLIC, b"", RFC_SIGNATURE)


def test_sign_and_verify_round_trip() -> None:
    pair = generate_signing_key()
    verify(pair.public, b"receipt body", sign(pair.private, b"receipt body"))


def test_key_id_is_sha256_prefix_of_public_key() -> None:
    pair = generate_signing_key()
    assert pair.kid == key_id(pair.public)
    assert len(pair.kid) == 16
    assert SigningKeyPair.from_private(pair.private) == pair


def test_signature_from_another_key_is_refused() -> None:
    signer, other = generate_signing_key(), generate_signing_key()
    with pytest.raises(IntegrityError, match=other.kid):
        verify(other.public, b"m", sign(signer.private, b"m"))


def test_edited_message_is_refused() -> None:
    pair = generate_signing_key()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify(pair.public, b"result hash: 1235", sign(pair.private, b"result hash: 1234"))


@pytest.mark.parametrize("length", [0, 63, 65])
def test_signature_of_wrong_length_is_refused(length: int) -> None:
    pair = generate_signing_key()
    with pytest.raises(IntegrityError, match="64 bytes"):
        verify(pair.public, b"m", bytes(length))


@pytest.mark.parametrize("length", [0, 31, 33])
def test_keys_of_wrong_length_are_typed_errors(length: int) -> None:
    with pytest.raises(CryptoError):
        sign(bytes(length), b"m")
    with pytest.raises(CryptoError):
        verify(bytes(length), b"m", bytes(64))


@settings(max_examples=50, deadline=None)
@given(message=st.binary(max_size=256), data=st.data())
def test_property_any_signature_byte_flip_is_refused(message: bytes, data: st.DataObject) -> None:
    pair = generate_signing_key()
    signature = sign(pair.private, message)
    index = data.draw(st.integers(min_value=0, max_value=63), label="index")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    forged = signature[:index] + bytes([signature[index] ^ mask]) + signature[index + 1 :]
    with pytest.raises(IntegrityError):
        verify(pair.public, message, forged)


def record(not_after: datetime | None) -> SigningKeyRecord:
    pair = generate_signing_key()
    return SigningKeyRecord(
        kid=pair.kid, public=pair.public, not_before=T0, not_after=not_after, state="current"
    )


def test_validity_period_is_half_open() -> None:
    rec = record(T0 + timedelta(days=30))
    assert rec.valid_at(T0)
    assert rec.valid_at(T0 + timedelta(days=29))
    assert not rec.valid_at(T0 + timedelta(days=30))
    assert not rec.valid_at(T0 - timedelta(seconds=1))
    assert record(None).valid_at(T0 + timedelta(days=10_000))


def test_expired_key_is_refused_with_its_period() -> None:
    rec = record(T0 + timedelta(days=1))
    with pytest.raises(KeyNotValid, match=rf"{rec.kid} is valid from 2026-01-01.*until 2026-01-02"):
        rec.require_valid_at(T0 + timedelta(days=2))


def test_record_round_trips_through_its_dict() -> None:
    rec = record(T0 + timedelta(days=1))
    assert SigningKeyRecord.from_dict(rec.to_dict()) == rec


def test_record_with_a_substituted_public_key_is_refused() -> None:
    rec = record(None)
    doc = replace(rec, public=generate_signing_key().public).to_dict()
    with pytest.raises(CryptoError, match="does not match its id"):
        SigningKeyRecord.from_dict(doc)


def test_malformed_record_is_a_typed_error() -> None:
    with pytest.raises(CryptoError, match="malformed"):
        SigningKeyRecord.from_dict({"kid": "x"})
