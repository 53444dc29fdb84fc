"""Hashing and canonical JSON: the byte forms that hashes and signatures are taken over.

Two canonical forms:

* :func:`jcs_json`, the JSON Canonicalization Scheme of RFC 8785 (through the ``rfc8785`` package):
  keys sorted by UTF-16 code units, numbers in the ECMAScript form (``1.0`` is ``1``, ``1e-7`` is
  ``1e-7``), strings escaped as RFC 8785 §3.2.2.2 says. Libraries exist for most languages, so an auditor
  can recompute a hash or check a signature without our code. Receipts from format v2 on use it.
* :func:`canonical_json`, the form of the first formats (receipt v1, the audit chain): object keys
  sorted, separators ``(",", ":")``, UTF-8 without ASCII escaping, Python's own float repr. It equals
  RFC 8785 for values without floats and non-BMP keys, and stays so that old receipts still verify.

Neither accepts NaN or infinity: two equal values always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import rfc8785

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


#: The largest integer magnitude I-JSON (RFC 7493 §2.2) and so RFC 8785 represent exactly.
EXACT_INT = 2**53 - 1


def exact_integers(value: object) -> object:
    """``value`` with every integer beyond :data:`EXACT_INT` in magnitude written as its decimal string,
    which RFC 8785 can serialise (it has no form for such a number); tuples become lists.

    >>> exact_integers({"n": 2**60, "m": [1, True, 2.5]})
    {'n': '1152921504606846976', 'm': [1, True, 2.5]}
    """
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:  # the common cases first
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > EXACT_INT else value
    if isinstance(value, list | tuple):
        return [exact_integers(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): exact_integers(v) for k, v in value.items()}
    return value


def jcs_json(obj: object) -> bytes:
    """RFC 8785 canonical JSON bytes of ``obj``; :class:`NotCanonical` for NaN, infinity, non-JSON types.

    >>> jcs_json({"b": [1, 2.5, 1.0, 1e-7], "a": "é"}).decode("utf-8")
    '{"a":"é","b":[1,2.5,1,1e-7]}'
    """
    if _same_as_sorted_json(obj):
        # Without floats, out-of-range integers and keys outside the Basic Multilingual Plane, RFC 8785
        # is exactly sorted compact JSON (same escapes, and code-point order is UTF-16 order within the
        # BMP); the standard library writes it several times faster than the reference implementation.
        # ``tests/crypto/test_crypto_hashing.py`` compares both on generated values.
        try:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation refuse it
    try:
        return rfc8785.dumps(obj)  # type: ignore[arg-type]  # any JSON value; others raise
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise NotCanonical(f"value has no RFC 8785 form: {type(exc).__name__}") from exc


def _same_as_sorted_json(value: object) -> bool:
    """Whether sorted compact JSON of ``value`` is its RFC 8785 form (see :func:`jcs_json`).

    Exact types only (``type(v) is``, faster than ``isinstance`` here, which runs on every hash): a
    subclass goes the reference implementation's way, which is also correct.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -EXACT_INT <= value <= EXACT_INT  # type: ignore[operator]  # kind is int
    if kind is list or kind is tuple:
        return all(map(_same_as_sorted_json, value))  # type: ignore[call-overload]  # kind is list
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]  # kind is dict
            if type(key) is not str or not (key.isascii() or max(key) < "\U00010000"):
                return False
            if not _same_as_sorted_json(item):
                return False
        return True
    return False  # floats, and anything JSON cannot hold: the reference implementation decides
