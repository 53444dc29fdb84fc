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
