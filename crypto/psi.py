"""Commutative blinding of join keys for ECDH private set intersection, through ``openmined-psi``.

The ECDH-PSI construction (Meadows 1986; Huberman, Franklin and Hogg 1999; the first round of Ion et
al., "On Deploying Secure Computing: Private Intersection-Sum-with-Cardinality", EuroS&P 2020, §3.1):
each party hashes an identifier to a point of a prime-order elliptic-curve group and raises it to its
own secret scalar. Because exponentiation commutes, ``H(x)^(a*b)`` is the same whichever party blinds
first, so two doubly blinded sets can be matched by equality, while a singly blinded token is useless
to anyone without the blinding key (DDH on P-256). ``openmined-psi`` (OpenMined's maintained C++
library, P-256, hash-to-curve included) does every group operation here; this module only carries its
messages as bytes so that the protocol can route them between parties.

>>> a, b = new_blinding_key(), new_blinding_key()
>>> left = reblind(b, blind(a, ["P0042", "P0007"]))
>>> right = reblind(a, blind(b, ["P0007", "P1234"]))
>>> left[1] == right[0], left[0] in right
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import private_set_intersection.python as _psi

from crypto.errors import CryptoError

#: Bytes of a compressed P-256 point, the form of every token.
TOKEN_BYTES = 33


@dataclass(frozen=True)
class BlindingKey:
    """One party's secret scalar for one job; never leaves the party that made it."""

    secret: bytes = field(repr=False)


def new_blinding_key() -> BlindingKey:
    """A fresh random scalar for one job (drawn by ``openmined-psi`` from a secure source).

    >>> new_blinding_key() == new_blinding_key()
    False
    """
    return BlindingKey(bytes(_psi.client.CreateWithNewKey(True).GetPrivateKeyBytes()))


def blind(key: BlindingKey, items: Sequence[str]) -> tuple[bytes, ...]:
    """``H(item)^key`` for each item, in the order given.

    >>> key = new_blinding_key()
    >>> blind(key, ["x"]) == blind(key, ["x"]), len(blind(key, ["x"])[0]) == TOKEN_BYTES
    (True, True)
    """
    if not items:
        return ()
    # reveal_intersection=True keeps the request in input order (the caller orders and shuffles).
    client = _psi.client.CreateFromKey(key.secret, True)
    return tuple(bytes(t) for t in client.CreateRequest(list(items)).encrypted_elements)


def reblind(key: BlindingKey, tokens: Sequence[bytes]) -> tuple[bytes, ...]:
    """``token^key`` for each token blinded by another party, in the order given.

    A token that is not a point of the group is refused (a malformed or forged message).

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> reblind(a, blind(b, ["x"])) == reblind(b, blind(a, ["x"]))
    True
    """
    if not tokens:
        return ()
    if any(len(t) != TOKEN_BYTES for t in tokens):
        raise CryptoError(f"a blinded token must be a compressed P-256 point of {TOKEN_BYTES} bytes")
    server = _psi.server.CreateFromKey(key.secret, True)
    request = _psi.Request()
    request.reveal_intersection = True
    request.encrypted_elements.extend(tokens)
    try:
        response = server.ProcessRequest(request)
    except RuntimeError as exc:
        raise CryptoError("a blinded token is not a point of the P-256 group") from exc
    return tuple(bytes(t) for t in response.encrypted_elements)
