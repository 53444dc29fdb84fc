"""Additively homomorphic encryption (Paillier 1999) through ``phe`` (python-paillier, gmpy2-backed).

Used for private intersection-sum (Ion et al., EuroS&P 2020, §3.2): a domain encrypts its per-person
values under its own key; another party adds the ciphertexts of the matched people without seeing a
value, blinds the sum with a random mask, and only the key's owner can decrypt the (masked) total.
Ciphertexts travel as plain integers so that the protocol can route them; every operation on them goes
through ``phe``.

>>> keys = new_keypair()
>>> total = add(keys.public, [encrypt(keys.public, 20), encrypt(keys.public, 22)])
>>> masked = add_plain(keys.public, total, 1000)
>>> decrypt(keys, masked) - 1000
42
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from phe import paillier as _phe

from crypto.errors import CryptoError

#: NIST SP 800-57 Part 1 Rev. 5, Table 2: a 2048-bit modulus gives 112 bits of security.
MIN_KEY_BITS = 2048


@dataclass(frozen=True)
class PaillierPublicKey:
    """The modulus ``n`` of a Paillier key: what a domain hands to the parties that add its ciphertexts."""

    n: int

    @property
    def max_plaintext(self) -> int:
        """Plaintexts and masks stay below this bound, so a masked sum never wraps around ``n``."""
        return int(self._phe().max_int)

    def _phe(self) -> _phe.PaillierPublicKey:
        return _phe.PaillierPublicKey(self.n)


@dataclass(frozen=True)
class PaillierKeyPair:
    """A domain's key for one job: the public half is shared, the private half never leaves it."""

    public: PaillierPublicKey
    _private: _phe.PaillierPrivateKey = field(repr=False, compare=False)


def new_keypair(*, bits: int = MIN_KEY_BITS) -> PaillierKeyPair:
    """A fresh key pair of ``bits`` (at least :data:`MIN_KEY_BITS`)."""
    if bits < MIN_KEY_BITS:
        raise CryptoError(f"a Paillier key needs at least {MIN_KEY_BITS} bits, got {bits}")
    public, private = _phe.generate_paillier_keypair(n_length=bits)
    return PaillierKeyPair(PaillierPublicKey(int(public.n)), private)


def private_bytes(keys: PaillierKeyPair) -> bytes:
    """The private half of ``keys`` as bytes (its primes ``p`` and ``q``, length-prefixed), so that a
    domain can seal it under its own key between the round that encrypts and the round that decrypts.

    >>> keys = new_keypair()
    >>> restored = keypair_from_private(private_bytes(keys))
    >>> restored.public == keys.public, decrypt(restored, encrypt(keys.public, 7))
    (True, 7)
    """
    private = keys._private
    p, q = int(private.p), int(private.q)
    size = max(p.bit_length(), q.bit_length()) // 8 + 1
    return size.to_bytes(2, "big") + p.to_bytes(size, "big") + q.to_bytes(size, "big")


def keypair_from_private(data: bytes) -> PaillierKeyPair:
    """The key pair whose private half :func:`private_bytes` wrote (``CryptoError`` if malformed)."""
    size = int.from_bytes(data[:2], "big")
    if size == 0 or len(data) != 2 + 2 * size:
        raise CryptoError("a sealed Paillier private key is malformed")
    p = int.from_bytes(data[2 : 2 + size], "big")
    q = int.from_bytes(data[2 + size :], "big")
    if (p * q).bit_length() < MIN_KEY_BITS:
        raise CryptoError(f"a Paillier key needs at least {MIN_KEY_BITS} bits")
    public = _phe.PaillierPublicKey(p * q)
    return PaillierKeyPair(PaillierPublicKey(p * q), _phe.PaillierPrivateKey(public, p, q))


def encrypt(public: PaillierPublicKey, value: int) -> int:
    """A fresh (randomised) encryption of ``0 <= value < public.max_plaintext``."""
    if not 0 <= value < public.max_plaintext:
        raise CryptoError("a Paillier plaintext must be a non-negative integer below the key's bound")
    return int(public._phe().encrypt(value).ciphertext(be_secure=True))


def add(public: PaillierPublicKey, ciphertexts: Sequence[int]) -> int:
    """The encryption of the sum of the plaintexts of ``ciphertexts`` (an encryption of 0 when empty)."""
    key = public._phe()
    total = key.encrypt(0)
    for ciphertext in ciphertexts:
        total = total + _phe.EncryptedNumber(key, ciphertext, 0)
    return int(total.ciphertext(be_secure=True))


def add_plain(public: PaillierPublicKey, ciphertext: int, value: int) -> int:
    """The encryption of ``plaintext + value`` for ``0 <= value < public.max_plaintext``."""
    if not 0 <= value < public.max_plaintext:
        raise CryptoError("a Paillier mask must be a non-negative integer below the key's bound")
    key = public._phe()
    return int((_phe.EncryptedNumber(key, ciphertext, 0) + value).ciphertext(be_secure=True))


def random_mask(public: PaillierPublicKey) -> int:
    """A uniformly random mask in ``[0, public.max_plaintext)``: statistically hides any sum far below it."""
    return secrets.randbelow(public.max_plaintext)


def decrypt(keys: PaillierKeyPair, ciphertext: int) -> int:
    """The plaintext of ``ciphertext`` modulo ``n`` (a masked sum decrypts to sum + mask exactly)."""
    if not 0 < ciphertext < keys.public.n**2:
        raise CryptoError("a Paillier ciphertext must lie in (0, n^2)")
    return int(keys._private.raw_decrypt(ciphertext))
