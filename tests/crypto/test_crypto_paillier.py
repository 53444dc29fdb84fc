"""Paillier through phe: sums under encryption, masks, and refusals of weak keys and bad inputs."""

from __future__ import annotations

import pytest

from crypto.errors import CryptoError
from crypto.paillier import (
    MIN_KEY_BITS,
    PaillierKeyPair,
    add,
    add_plain,
    decrypt,
    encrypt,
    keypair_from_private,
    new_keypair,
    private_bytes,
    random_mask,
)


@pytest.fixture(scope="module")
def keys() -> PaillierKeyPair:
    return new_keypair()


def test_the_sum_of_ciphertexts_decrypts_to_the_sum(keys: PaillierKeyPair) -> None:
    assert decrypt(keys, add(keys.public, [encrypt(keys.public, v) for v in (3, 5, 2**40)])) == 8 + 2**40


def test_two_encryptions_of_one_value_differ(keys: PaillierKeyPair) -> None:
    assert encrypt(keys.public, 7) != encrypt(keys.public, 7)


def test_a_masked_sum_decrypts_to_sum_plus_mask_exactly(keys: PaillierKeyPair) -> None:
    mask = random_mask(keys.public)
    masked = add_plain(keys.public, encrypt(keys.public, 42), mask)
    assert decrypt(keys, masked) - mask == 42


def test_keys_below_the_minimum_are_refused() -> None:
    with pytest.raises(CryptoError, match=str(MIN_KEY_BITS)):
        new_keypair(bits=1024)


@pytest.mark.parametrize("value", [-1, 2**2047])
def test_plaintexts_out_of_range_are_refused(keys: PaillierKeyPair, value: int) -> None:
    with pytest.raises(CryptoError):
        encrypt(keys.public, value)


def test_a_ciphertext_outside_the_group_is_refused(keys: PaillierKeyPair) -> None:
    with pytest.raises(CryptoError):
        decrypt(keys, keys.public.n**2 + 1)


def test_a_private_key_sealed_between_rounds_decrypts_what_its_public_half_encrypted(
    keys: PaillierKeyPair,
) -> None:
    restored = keypair_from_private(private_bytes(keys))
    assert restored.public == keys.public
    assert decrypt(restored, add(keys.public, [encrypt(keys.public, 40), encrypt(keys.public, 2)])) == 42


@pytest.mark.parametrize("cut", [0, 1, 2, 100])
def test_a_truncated_private_key_is_refused(keys: PaillierKeyPair, cut: int) -> None:
    with pytest.raises(CryptoError):
        keypair_from_private(private_bytes(keys)[: len(private_bytes(keys)) - cut - 1])


def test_a_private_key_of_small_primes_is_refused() -> None:
    small = (4).to_bytes(2, "big") + (251).to_bytes(4, "big") + (241).to_bytes(4, "big")
    with pytest.raises(CryptoError):
        keypair_from_private(small)
