"""Authenticated encryption at rest: AES-256-GCM (NIST SP 800-38D) with bound associated data.

A blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The nonce is 96 random bits drawn
fresh for every seal: with random nonces, SP 800-38D §8.3 bounds one key to 2**32 seals, far above the
number of parts of a dataset version, which is the most one data key ever seals.

The associated data (``aad``) is not stored in the blob; the caller supplies it again to unseal. It
binds the ciphertext to where it belongs (dataset, version, part), so a part moved to another place
fails to unseal instead of decrypting as the wrong data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.errors import CryptoError, IntegrityError

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def new_data_key() -> bytes:
    """A fresh random 256-bit key from the operating system's CSPRNG.

    >>> len(new_data_key()) == DATA_KEY_BYTES
    True
    """
    return os.urandom(DATA_KEY_BYTES)


def _cipher(key: bytes) -> AESGCM:
    if len(key) != DATA_KEY_BYTES:
        # The length is safe to report; the key itself never is.
        raise CryptoError(f"AES-256-GCM needs a {DATA_KEY_BYTES}-byte key, got {len(key)} bytes")
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``; returns ``nonce || ciphertext+tag``.

    >>> key = new_data_key()
    >>> blob = seal(key, b"rows", aad=b"health/visits/v1/part-0")
    >>> len(blob) == NONCE_BYTES + len(b"rows") + TAG_BYTES
    True
    >>> unseal(key, blob, aad=b"health/visits/v1/part-0")
    b'rows'
    """
    nonce = os.urandom(NONCE_BYTES)  # fresh every time: a repeated (key, nonce) breaks GCM entirely
    return nonce + _cipher(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, *, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`seal`; :class:`IntegrityError` on a wrong key, wrong aad or any tamper.

    >>> key = new_data_key()
    >>> unseal(key, seal(key, b"rows", aad=b"part-0"), aad=b"part-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: ciphertext failed authentication: wrong key, ...
    """
    cipher = _cipher(key)
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise IntegrityError(
            f"ciphertext is truncated: {len(blob)} bytes, shorter than nonce and tag "
            f"({NONCE_BYTES + TAG_BYTES})"
        )
    try:
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise IntegrityError(
            "ciphertext failed authentication: wrong key, wrong associated data, or tampered bytes"
        ) from exc
