"""Keyed pseudonyms and partitioning: HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869).

``keyed_hash`` turns an identifier into a token that is stable under one key and unlinkable across
keys: a scope's keyed-hash mask uses a per-scope key, so the same person gets the same token within a
scope and unrelated tokens in two scopes. ``partition_index`` places a privacy unit in one part of a
dataset version, keyed so that part membership reveals nothing about the unit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import CryptoError

KEY_BYTES = 32
MIN_KEY_BYTES = 16  # below 128 bits a keyed hash of low-entropy identifiers is brute-forceable
TOKEN_HEX_CHARS = 32  # 128 bits: collisions among 2**32 units stay below 2**-64
_DERIVE_INFO = b"data-sandbox/derive/v1:"


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise CryptoError(f"keyed hash needs a key of at least {MIN_KEY_BYTES} bytes, got {len(key)} bytes")


def derive_key(master: bytes, label: str) -> bytes:
    """A 32-byte key for ``label`` derived from ``master`` with HKDF-SHA256 (RFC 5869).

    Different labels give independent keys; the master cannot be recovered from them.

    >>> master = bytes(32)
    >>> derive_key(master, "scope:flu") == derive_key(master, "scope:flu")
    True
    >>> derive_key(master, "scope:flu") == derive_key(master, "scope:covid")
    False
    """
    _check_key(master)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_DERIVE_INFO + label.encode())
    return hkdf.derive(master)


def keyed_hasher(key: bytes) -> Callable[[str], str]:
    """A fast :func:`keyed_hash` for many values under one key (the HMAC key schedule is done once).

    >>> h = keyed_hasher(bytes(32))
    >>> h("AB123") == keyed_hash(bytes(32), "AB123")
    True
    """
    _check_key(key)
    prototype = hmac.new(key, digestmod=hashlib.sha256)

    def token(value: str) -> str:
        mac = prototype.copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()[:TOKEN_HEX_CHARS]

    return token


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 (RFC 2104) of ``value`` under ``key``: 32 lowercase hex characters (128 bits).

    >>> token = keyed_hash(bytes(32), "AB123")
    >>> len(token), token == token.lower()
    (32, True)
    >>> keyed_hash(bytes(32), "AB123") == keyed_hash(bytes(range(32)), "AB123")
    False
    """
    return keyed_hasher(key)(value)


def partitioner(key: bytes, n_parts: int) -> Callable[[str], int]:
    """A fast :func:`partition_index` for many units under one key and part count.

    >>> p = partitioner(bytes(32), 8)
    >>> p("person-1") == partition_index(bytes(32), "person-1", 8)
    True
    """
    _check_key(key)
    if n_parts < 1:
        raise CryptoError(f"the number of parts must be at least 1, got {n_parts}")
    prototype = hmac.new(key, digestmod=hashlib.sha256)

    def index(unit: str) -> int:
        mac = prototype.copy()
        mac.update(unit.encode("utf-8"))
        # 64 bits modulo a small n: the bias is below n / 2**64, far under any measurable skew.
        return int.from_bytes(mac.digest()[:8], "big") % n_parts

    return index


def partition_index(key: bytes, unit: str, n_parts: int) -> int:
    """The part (``0 <= i < n_parts``) that privacy unit ``unit`` belongs to, keyed by HMAC-SHA256.

    Pass units as strings (an integer id as its decimal form) so that the same unit always lands in
    the same part whatever its column type.

    >>> 0 <= partition_index(bytes(32), "person-1", 4) < 4
    True
    >>> partition_index(bytes(32), "person-1", 1)
    0
    """
    return partitioner(key, n_parts)(unit)
