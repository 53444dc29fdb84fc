"""Hashing and canonical JSON: the byte forms that hashes and signatures are taken over.

Canonical JSON here means: object keys sorted, separators ``(",", ":")``, UTF-8 without ASCII
escaping, and no NaN or infinity. Two equal values always give the same bytes, so a hash of the
canonical form can be recomputed by an auditor in any language.
"""

from __future__ import annotations

import hashlib
import json

from crypto.errors import NotCanonical


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 (FIPS 180-4) of ``data``.

    >>> sha256_hex(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: object) -> bytes:
    """Canonical JSON bytes of ``obj``; raises :class:`NotCanonical` for NaN, infinity or non-JSON types.

    >>> canonical_json({"b": [1, 2.5], "a": "é"}).decode("utf-8")
    '{"a":"é","b":[1,2.5]}'
    >>> canonical_json({"x": float("nan")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.NotCanonical: value has no canonical JSON form: Out of range float values ...
    """
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotCanonical(f"value has no canonical JSON form: {exc}") from exc
    return text.encode("utf-8")
