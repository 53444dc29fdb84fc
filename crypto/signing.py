"""Signatures: Ed25519 (RFC 8032), for receipts and audit checkpoints.

Keys travel as raw bytes: a 32-byte private seed and a 32-byte public key. A key's id is the first
16 hex characters of the SHA-256 of its public key, so anyone holding a public key can recompute the
id a signature names. Published keys carry a validity period (:class:`SigningKeyRecord`): after a
rotation the old key stays published, with ``not_after`` set, so older receipts still verify.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crypto.errors import CryptoError, IntegrityError, KeyNotValid
from crypto.hashing import sha256_hex

ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
KID_HEX_CHARS = 16


@dataclass(frozen=True)
class SigningKeyPair:
    """An Ed25519 key pair. ``private`` is excluded from ``repr`` so it never lands in a log."""

    kid: str
    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> SigningKeyPair:
        """Rebuild the pair (public key and id) from a 32-byte private seed."""
        public = public_key_of(private)
        return cls(kid=key_id(public), private=private, public=public)


@dataclass(frozen=True)
class SigningKeyRecord:
    """A published verification key with its validity period; holds no private material.

    ``not_after`` is ``None`` while the key is current. ``state`` is ``"current"`` or ``"retired"``.
    """

    kid: str
    public: bytes
    not_before: datetime
    not_after: datetime | None
    state: str

    def valid_at(self, at: datetime) -> bool:
        """Whether a signature made at ``at`` falls inside this key's validity period (end exclusive)."""
        return self.not_before <= at and (self.not_after is None or at < self.not_after)

    def require_valid_at(self, at: datetime) -> None:
        """Raise :class:`KeyNotValid` unless :meth:`valid_at`; the message names the key and its period."""
        if not self.valid_at(at):
            until = "open" if self.not_after is None else self.not_after.isoformat()
            raise KeyNotValid(
                f"signing key {self.kid} is valid from {self.not_before.isoformat()} until {until}, "
                f"not at {at.isoformat()}"
            )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for publication (public key in standard base64)."""
        return {
            "kid": self.kid,
            "public": base64.b64encode(self.public).decode("ascii"),
            "not_before": self.not_before.isoformat(),
            "not_after": None if self.not_after is None else self.not_after.isoformat(),
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SigningKeyRecord:
        """Inverse of :meth:`to_dict`; :class:`CryptoError` if a field is missing or malformed."""
        try:
            public = base64.b64decode(str(data["public"]), validate=True)
            not_after = data["not_after"]
            record = cls(
                kid=str(data["kid"]),
                public=public,
                not_before=datetime.fromisoformat(str(data["not_before"])),
                not_after=None if not_after is None else datetime.fromisoformat(str(not_after)),
                state=str(data["state"]),
            )
        except (KeyError, ValueError, binascii.Error) as exc:
            raise CryptoError(f"malformed signing key record: {type(exc).__name__}") from exc
        if len(public) != ED25519_KEY_BYTES or key_id(public) != record.kid:
            raise CryptoError(f"signing key record {record.kid}: public key does not match its id")
        return record


def key_id(public: bytes) -> str:
    """The id of a public key: first 16 hex characters of its SHA-256.

    >>> key_id(bytes(32))
    '66687aadf862bd77'
    """
    return sha256_hex(public)[:KID_HEX_CHARS]


def _private_key(private: bytes) -> Ed25519PrivateKey:
    if len(private) != ED25519_KEY_BYTES:
        raise CryptoError(f"an Ed25519 private key is {ED25519_KEY_BYTES} bytes, got {len(private)} bytes")
    return Ed25519PrivateKey.from_private_bytes(private)


def public_key_of(private: bytes) -> bytes:
    """The raw 32-byte public key of a 32-byte private seed."""
    return (
        _private_key(private)
        .public_key()
        .public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    )


def generate_signing_key() -> SigningKeyPair:
    """A fresh Ed25519 key pair.

    >>> pair = generate_signing_key()
    >>> pair.kid == key_id(pair.public), len(pair.public)
    (True, 32)
    """
    seed = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return SigningKeyPair.from_private(seed)


def sign(private: bytes, message: bytes) -> bytes:
    """Ed25519 signature (64 bytes, RFC 8032 §5.1.6) of ``message``.

    >>> pair = generate_signing_key()
    >>> verify(pair.public, b"receipt", sign(pair.private, b"receipt"))
    >>> verify(pair.public, b"receipt!", sign(pair.private, b"receipt"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: Ed25519 signature does not verify under key ...
    """
    return _private_key(private).sign(message)


def verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature (RFC 8032 §5.1.7); :class:`IntegrityError` naming the key id if bad."""
    if len(public) != ED25519_KEY_BYTES:
        raise CryptoError(f"an Ed25519 public key is {ED25519_KEY_BYTES} bytes, got {len(public)} bytes")
    kid = key_id(public)
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise IntegrityError(
            f"Ed25519 signature under key {kid} must be {ED25519_SIGNATURE_BYTES} bytes, got {len(signature)}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature as exc:
        raise IntegrityError(f"Ed25519 signature does not verify under key {kid}") from exc
