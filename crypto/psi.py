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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import CryptoError

#: Bytes of a compressed P-256 point, the form of every token.
TOKEN_BYTES = 33
#: The order ``n`` of the P-256 group (SEC 2 v2, §2.4.2; FIPS 186-4, D.1.2.3): blinding keys are scalars
#: in ``[1, n)``, and exponents multiply modulo ``n``.
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SCALAR_BYTES = 32
_DERIVE_INFO = b"sandbox/psi-scalar/v1:"


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


def derived_blinding_key(secret: bytes, label: str) -> BlindingKey:
    """A blinding key that is the same every time for ``(secret, label)``: for a domain, its key of a
    scope lineage, so that the doubly blinded token of a person is the same in every job of it.

    HKDF-SHA256 (RFC 5869) expands ``secret`` to 48 bytes, reduced modulo ``n - 1`` and plus one: FIPS
    186-4 B.4.1 ("key pair generation using extra random bits"), whose bias is below ``2**-64``.

    >>> a = derived_blinding_key(bytes(32), "lineage-1")
    >>> a == derived_blinding_key(bytes(32), "lineage-1"), a == derived_blinding_key(bytes(32), "lineage-2")
    (True, False)
    """
    if len(secret) < _SCALAR_BYTES:
        raise CryptoError(f"a blinding key is derived from at least {_SCALAR_BYTES} secret bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=_DERIVE_INFO + label.encode())
    return _key(int.from_bytes(hkdf.derive(secret), "big") % (ORDER - 1) + 1)


def product(first: BlindingKey, second: BlindingKey) -> BlindingKey:
    """The key that blinds as ``first`` then ``second`` do in turn: ``H(x)^(first*second mod n)``.

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> blind(product(a, b), ["x"]) == reblind(b, blind(a, ["x"]))
    True
    """
    return _key(_scalar(first) * _scalar(second) % ORDER)


def inverse(key: BlindingKey) -> BlindingKey:
    """The key that undoes ``key``: ``(t^key)^inverse(key) == t`` (the group has prime order ``n``).

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> reblind(inverse(a), reblind(a, blind(b, ["x"]))) == blind(b, ["x"])
    True
    """
    return _key(pow(_scalar(key), -1, ORDER))


def _scalar(key: BlindingKey) -> int:
    value = int.from_bytes(key.secret, "big")
    if not 0 < value < ORDER:
        raise CryptoError("a blinding key is not a scalar of the P-256 group")
    return value


def _key(value: int) -> BlindingKey:
    return BlindingKey(value.to_bytes(_SCALAR_BYTES, "big"))


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
