"""Typed errors of the ``crypto`` package.

Every error has a stable ``code``; ``sandbox_api`` alone maps codes to HTTP statuses. Messages name
what failed and where (a key id, a domain, a sequence number, a file path) and never contain key
material: no key bytes, and no hex or base64 of them.
"""

from __future__ import annotations

from typing import ClassVar


class CryptoError(Exception):
    """Base class of every failure raised by ``crypto``."""

    code: ClassVar[str] = "crypto-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class IntegrityError(CryptoError):
    """Tampered ciphertext or signature, wrong associated data, or a broken audit chain."""

    code = "integrity-error"


class UnknownKey(CryptoError):
    """A key id (KEK, signing key, domain) that the key provider or the caller does not know."""

    code = "unknown-key"


class KeyDestroyed(CryptoError):
    """The data key was destroyed (crypto-shredded); the data it protected is unrecoverable."""

    code = "key-destroyed"


class KeyNotValid(CryptoError):
    """A signing key used outside its validity period (not yet valid, or already retired)."""

    code = "key-not-valid"


class KeyringError(CryptoError):
    """The keyring file is missing, unreadable, malformed or has permissions that are too open."""

    code = "keyring-error"


class NotCanonical(CryptoError):
    """A value that has no canonical JSON form (NaN, infinity, or a type JSON cannot hold)."""

    code = "not-canonical"
