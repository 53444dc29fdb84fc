"""Sealing a secret under an operator's passphrase: scrypt to derive the key, AES-256-GCM to seal.

A backup carries the keyring, which must never leave the deployment readable: it is sealed under a
passphrase the operator keeps apart from the backup. Everything comes from ``cryptography``: scrypt
(RFC 7914) with a fresh 16-byte salt per blob turns the passphrase into a 256-bit key, and AES-256-GCM
(:mod:`crypto.envelope`) seals the message bound to the caller's associated data *and* to the blob's
own header, so neither the salt nor the cost can be changed without the blob failing to open.

Blob: ``MAGIC || log2(n) (1 byte) || salt (16) || nonce || ciphertext+tag``.

>>> blob = seal_with_passphrase(b"keys", "correct horse battery", aad=b"ctx", log2_n=10)
>>> open_with_passphrase(blob, "correct horse battery", aad=b"ctx")
b'keys'
>>> open_with_passphrase(blob, "wrong horse battery", aad=b"ctx")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
crypto.errors.IntegrityError: the sealed blob does not open: a wrong passphrase, ...
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.envelope import DATA_KEY_BYTES, seal, unseal
from crypto.errors import CryptoError, IntegrityError

__all__ = ["LOG2_N", "MIN_PASSPHRASE_CHARS", "open_with_passphrase", "seal_with_passphrase"]

_MAGIC: Final = b"DSP1"
_SALT_BYTES: Final = 16
# scrypt cost: n = 2**17, r = 8, p = 1 (128 MiB, a fraction of a second) is the cost RFC 7914 and
# OWASP name for interactive use; a backup is opened rarely, so a guesser pays it on every try.
LOG2_N: Final = 17
_R: Final = 8
_P: Final = 1
# Costs a blob may name: below is too cheap to protect anything, above would let a tampered header
# make the reader allocate gigabytes before the tag check can refuse it.
_LOG2_N_RANGE: Final = range(10, 21)
MIN_PASSPHRASE_CHARS: Final = 12
_FAILED: Final = "the sealed blob does not open: a wrong passphrase, other associated data or a tamper"


def _key(passphrase: str, salt: bytes, log2_n: int) -> bytes:
    kdf = Scrypt(salt=salt, length=DATA_KEY_BYTES, n=2**log2_n, r=_R, p=_P)
    return kdf.derive(passphrase.encode("utf-8"))


def _bound(header: bytes, aad: bytes) -> bytes:
    # Length-prefixed so that no (header, aad) pair can be read as another.
    return b"".join(len(part).to_bytes(4, "big") + part for part in (header, aad))


def seal_with_passphrase(plaintext: bytes, passphrase: str, *, aad: bytes, log2_n: int = LOG2_N) -> bytes:
    """``plaintext`` sealed under a key derived from ``passphrase``, bound to ``aad``.

    ``log2_n`` is the scrypt cost; only the doctests of this module lower it."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise CryptoError(f"a passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    if log2_n not in _LOG2_N_RANGE:
        raise CryptoError(
            f"the scrypt cost log2(n) must lie in {_LOG2_N_RANGE.start}..{_LOG2_N_RANGE.stop - 1}"
        )
    salt = os.urandom(_SALT_BYTES)
    header = _MAGIC + bytes([log2_n]) + salt
    return header + seal(_key(passphrase, salt, log2_n), plaintext, aad=_bound(header, aad))


def open_with_passphrase(blob: bytes, passphrase: str, *, aad: bytes) -> bytes:
    """The plaintext of a blob from :func:`seal_with_passphrase`; :class:`IntegrityError` for a wrong
    passphrase, other ``aad`` or any change to the blob."""
    header_len = len(_MAGIC) + 1 + _SALT_BYTES
    if len(blob) < header_len or not blob.startswith(_MAGIC):
        raise IntegrityError(
            "the sealed blob is malformed: it does not start with the passphrase-seal header"
        )
    log2_n = blob[len(_MAGIC)]
    if log2_n not in _LOG2_N_RANGE:
        raise IntegrityError("the sealed blob is malformed: its scrypt cost is out of range")
    header, salt = blob[:header_len], blob[len(_MAGIC) + 1 : header_len]
    try:
        return unseal(_key(passphrase, salt, log2_n), blob[header_len:], aad=_bound(header, aad))
    except IntegrityError:
        raise IntegrityError(_FAILED) from None
