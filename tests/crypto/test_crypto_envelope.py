"""AES-256-GCM envelope: round trip, tamper anywhere, wrong associated data, wrong key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.envelope import DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES, new_data_key, seal, unseal
from crypto.errors import CryptoError, IntegrityError

AAD = b"health-bureau/visits/v1/visits/0"


def flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


def test_round_trip() -> None:
    key = new_data_key()
    assert unseal(key, seal(key, b"parquet bytes", aad=AAD), aad=AAD) == b"parquet bytes"


def test_blob_layout_is_nonce_ciphertext_tag() -> None:
    blob = seal(new_data_key(), b"12345", aad=AAD)
    assert len(blob) == NONCE_BYTES + 5 + TAG_BYTES


def test_nonce_is_fresh_for_every_seal() -> None:
    key = new_data_key()
    first, second = seal(key, b"same", aad=AAD), seal(key, b"same", aad=AAD)
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES]
    assert first != second


def test_data_keys_are_random_and_full_length() -> None:
    assert len(new_data_key()) == DATA_KEY_BYTES
    assert new_data_key() != new_data_key()


@pytest.mark.parametrize(
    "where", ["first nonce byte", "last nonce byte", "first ciphertext byte", "first tag byte", "last byte"]
)
def test_one_byte_tamper_is_detected(where: str) -> None:
    key = new_data_key()
    blob = seal(key, b"0123456789", aad=AAD)
    index = {
        "first nonce byte": 0,
        "last nonce byte": NONCE_BYTES - 1,
        "first ciphertext byte": NONCE_BYTES,
        "first tag byte": len(blob) - TAG_BYTES,
        "last byte": len(blob) - 1,
    }[where]
    with pytest.raises(IntegrityError, match="failed authentication"):
        unseal(key, flip(blob, index), aad=AAD)


def test_wrong_aad_is_refused() -> None:
    key = new_data_key()
    blob = seal(key, b"part zero", aad=b"ds/v1/t/0")
    with pytest.raises(IntegrityError):
        unseal(key, blob, aad=b"ds/v1/t/1")  # a part swapped into another slot


def test_wrong_key_is_refused() -> None:
    blob = seal(new_data_key(), b"secret rows", aad=AAD)
    with pytest.raises(IntegrityError):
        unseal(new_data_key(), blob, aad=AAD)


@pytest.mark.parametrize("length", [0, NONCE_BYTES, NONCE_BYTES + TAG_BYTES - 1])
def test_truncated_blob_is_refused(length: int) -> None:
    key = new_data_key()
    blob = seal(key, b"rows", aad=AAD)[:length]
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(key, blob, aad=AAD)


def test_appended_bytes_are_refused() -> None:
    key = new_data_key()
    with pytest.raises(IntegrityError):
        unseal(key, seal(key, b"rows", aad=AAD) + b"\x00", aad=AAD)


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_key_of_wrong_length_is_a_typed_error(size: int) -> None:
    with pytest.raises(CryptoError, match=f"got {size} bytes"):
        seal(bytes(size), b"rows", aad=AAD)


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
def test_property_round_trip(plaintext: bytes, aad: bytes) -> None:
    key = new_data_key()
    assert unseal(key, seal(key, plaintext, aad=aad), aad=aad) == plaintext


@settings(max_examples=80, deadline=None)
@given(plaintext=st.binary(max_size=512), data=st.data())
def test_property_any_single_byte_change_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    key = new_data_key()
    blob = seal(key, plaintext, aad=AAD)
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="xor mask")
    tampered = blob[:index] + bytes([blob[index] ^ mask]) + blob[index + 1 :]
    with pytest.raises(IntegrityError):
        unseal(key, tampered, aad=AAD)


@settings(max_examples=40, deadline=None)
@given(aad=st.binary(max_size=32), other=st.binary(max_size=32))
def test_property_any_other_aad_is_refused(aad: bytes, other: bytes) -> None:
    key = new_data_key()
    blob = seal(key, b"rows", aad=aad)
    if other == aad:
        assert unseal(key, blob, aad=other) == b"rows"
    else:
        with pytest.raises(IntegrityError):
            unseal(key, blob, aad=other)
