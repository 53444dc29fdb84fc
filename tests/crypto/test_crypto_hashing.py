"""Canonical JSON and SHA-256: the byte forms hashes and signatures are taken over."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import NotCanonical
from crypto.hashing import canonical_json, sha256_hex


def test_sha256_matches_fips_180_vector() -> None:
    # FIPS 180-4 example "abc"
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": None}}) == b'{"a":{"c":null,"d":[1,2]},"b":1}'


def test_canonical_json_keeps_unicode_as_utf8() -> None:
    assert canonical_json(["Zürich"]) == '["Zürich"]'.encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_have_no_canonical_form(value: float) -> None:
    with pytest.raises(NotCanonical):
        canonical_json({"x": value})


def test_non_json_types_are_refused() -> None:
    with pytest.raises(NotCanonical, match="not JSON serializable"):
        canonical_json({"key": b"raw bytes"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(), json_values))
def test_property_key_order_does_not_change_the_bytes(value: dict[str, object]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)
    assert sha256_hex(canonical_json(value)) == hashlib.sha256(canonical_json(reordered)).hexdigest()
