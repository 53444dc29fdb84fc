"""ECDH blinding through openmined-psi: commutative, keyed, and strict about what it re-blinds."""

from __future__ import annotations

import pytest

from crypto.errors import CryptoError
from crypto.psi import TOKEN_BYTES, blind, new_blinding_key, reblind


def test_doubly_blinded_tokens_match_whichever_party_blinds_first() -> None:
    a, b = new_blinding_key(), new_blinding_key()
    assert reblind(b, blind(a, ["P1", "P2"])) == reblind(a, blind(b, ["P1", "P2"]))


def test_a_token_under_one_key_does_not_match_the_same_unit_under_another() -> None:
    a, b = new_blinding_key(), new_blinding_key()
    assert set(blind(a, ["P1", "P2"])).isdisjoint(blind(b, ["P1", "P2"]))


def test_blinding_keeps_the_order_given() -> None:
    key = new_blinding_key()
    assert blind(key, ["P1", "P2", "P3"]) == tuple(blind(key, [u])[0] for u in ("P1", "P2", "P3"))


@pytest.mark.parametrize("token", [b"\x02" + bytes(31), b"\x05" + bytes(TOKEN_BYTES - 1)])
def test_reblind_refuses_what_is_not_a_point(token: bytes) -> None:
    with pytest.raises(CryptoError):
        reblind(new_blinding_key(), [token])


def test_the_key_is_not_in_its_repr() -> None:
    key = new_blinding_key()
    assert key.secret.hex() not in repr(key)
