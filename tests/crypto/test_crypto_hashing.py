"""Canonical JSON and SHA-256: the byte forms hashes and signatures are taken over."""

from __future__ import annotations

import hashlib
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import NotCanonical
from crypto.hashing import canonical_json, jcs_json, sha256_hex


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


# Every JSON value without floats, including keys and strings from the whole of Unicode (non-BMP keys,
# control characters, lone surrogates) and integers on both sides of the exact range.
_ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()))  # surrogates included
_JSON_WITHOUT_FLOATS = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | _ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_ANY_TEXT, children, max_size=4),
    max_leaves=12,
)


@given(_JSON_WITHOUT_FLOATS)
@settings(max_examples=400, deadline=None)
def test_jcs_json_fast_path_writes_exactly_the_reference_bytes(value: object) -> None:
    try:
        expected: bytes | type[Exception] = rfc8785.dumps(value)  # type: ignore[arg-type]
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        expected = NotCanonical
    if expected is NotCanonical:
        with pytest.raises(NotCanonical):
            jcs_json(value)
    else:
        assert jcs_json(value) == expected


def test_jcs_json_sorts_non_bmp_keys_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB33 in UTF-16 (not in code points).
    assert jcs_json({"\ufb33": 1, "\U0001f600": 2}).decode("utf-8") == '{"\U0001f600":2,"\ufb33":1}'
