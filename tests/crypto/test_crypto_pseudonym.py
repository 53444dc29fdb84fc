"""Keyed pseudonyms (HMAC-SHA256, RFC 2104), key derivation (HKDF, RFC 5869), unit partitioning."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import CryptoError
from crypto.pseudonym import derive_key, keyed_hash, keyed_hasher, partition_index, partitioner

KEY = bytes(range(32))


def test_keyed_hash_is_truncated_hmac_sha256_rfc4231_case_1() -> None:
    # RFC 4231 test case 1: key 0x0b * 20, data "Hi There".
    full = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert keyed_hash(b"\x0b" * 20, "Hi There") == full[:32]


def test_keyed_hash_is_stable_within_a_key_and_unlinkable_across_keys() -> None:
    scope_a, scope_b = derive_key(KEY, "scope:flu"), derive_key(KEY, "scope:covid")
    assert keyed_hash(scope_a, "AB-1234") == keyed_hash(scope_a, "AB-1234")
    assert keyed_hash(scope_a, "AB-1234") != keyed_hash(scope_b, "AB-1234")


def test_derive_key_matches_hkdf_sha256_and_depends_on_master_and_label() -> None:
    assert len(derive_key(KEY, "x")) == 32
    assert derive_key(KEY, "x") != derive_key(KEY, "y")
    assert derive_key(KEY, "x") != derive_key(bytes(32), "x")
    # RFC 5869 §2.2/2.3 with an empty salt (HashLen zero bytes) and one output block.
    prk = hmac.new(bytes(32), KEY, hashlib.sha256).digest()
    okm = hmac.new(prk, b"data-sandbox/derive/v1:x" + b"\x01", hashlib.sha256).digest()
    assert derive_key(KEY, "x") == okm


SHORT_KEY_CALLS: dict[str, Callable[[bytes], object]] = {
    "keyed_hash": lambda key: keyed_hash(key, "x"),
    "derive_key": lambda key: derive_key(key, "x"),
    "partition_index": lambda key: partition_index(key, "x", 4),
}


@pytest.mark.parametrize("call", sorted(SHORT_KEY_CALLS))
def test_short_keys_are_refused(call: str) -> None:
    with pytest.raises(CryptoError, match="at least 16 bytes"):
        SHORT_KEY_CALLS[call](bytes(15))


@pytest.mark.parametrize("n_parts", [0, -3])
def test_partition_count_must_be_positive(n_parts: int) -> None:
    with pytest.raises(CryptoError, match="at least 1"):
        partition_index(KEY, "u", n_parts)


def test_partitions_are_balanced() -> None:
    index = partitioner(KEY, 8)
    counts = Counter(index(f"person-{i}") for i in range(8000))
    assert set(counts) == set(range(8))
    # Expected 1000 per part; a binomial standard deviation is ~30, so 850..1150 is > 5 sigma.
    assert all(850 <= c <= 1150 for c in counts.values()), counts


def test_partitioning_depends_on_the_key() -> None:
    units = [f"person-{i}" for i in range(200)]
    a = [partition_index(KEY, u, 16) for u in units]
    b = [partition_index(derive_key(KEY, "other"), u, 16) for u in units]
    assert a != b


@given(value=st.text(), n_parts=st.integers(min_value=1, max_value=1000))
def test_property_fast_helpers_agree_with_single_calls(value: str, n_parts: int) -> None:
    assert keyed_hasher(KEY)(value) == keyed_hash(KEY, value)
    assert partitioner(KEY, n_parts)(value) == partition_index(KEY, value, n_parts)
    assert 0 <= partition_index(KEY, value, n_parts) < n_parts
