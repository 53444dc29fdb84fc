"""Signatures for receipts and audit checkpoints: Ed25519 (RFC 8032), or SM2 (GB/T 32918.2) under the
``gm`` profile (:mod:`crypto.sm`, :mod:`crypto.profile`).

Every key names its ``algorithm`` (:data:`ED25519` or :data:`SM2`); a record without one is Ed25519, so
files and published records written before SM2 existed read back unchanged. Ed25519 keys travel as raw
bytes: a 32-byte private seed and a 32-byte public key (SM2: see :mod:`crypto.sm`). A key's id is the first
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
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crypto.errors import CryptoError, IntegrityError, KeyNotValid
from crypto.hashing import sha256_hex
from crypto.sm import (
    SM2_PRIVATE_BYTES,
    SM2_PUBLIC_BYTES,
    sm2_generate,
    sm2_public_key_of,
    sm2_sign,
    sm2_verify,
)

ED25519 = "ed25519"
SM2 = "sm2"
#: The signature algorithms, with the length of a private and of a public key of each.
KEY_BYTES: Mapping[str, tuple[int, int]] = {ED25519: (32, 32), SM2: (SM2_PRIVATE_BYTES, SM2_PUBLIC_BYTES)}
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
KID_HEX_CHARS = 16


@dataclass(frozen=True)
class SigningKeyPair:
    """A key pair that signs in memory. ``private`` is excluded from ``repr`` so it never lands in a log.

    It is a :class:`Signer`; a signer whose key never leaves a device (PKCS#11) is another one.
    """

    kid: str
    private: bytes = field(repr=False)
    public: bytes
    algorithm: str = ED25519

    @classmethod
    def from_private(cls, private: bytes, *, algorithm: str = ED25519) -> SigningKeyPair:
        """Rebuild the pair (public key and id) from its private key."""
        public = public_key_of(private, algorithm=algorithm)
        return cls(kid=key_id(public), private=private, public=public, algorithm=algorithm)

    def sign(self, message: bytes) -> bytes:
        """This key's signature of ``message`` (:func:`sign`)."""
        return sign(self.private, message, algorithm=self.algorithm)


class Signer(Protocol):
    """What receipts and checkpoints need of a signing key: deliberately small, so that a key held in a
    hardware token fits behind it as well as an in-memory :class:`SigningKeyPair`."""

    @property
    def kid(self) -> str: ...

    @property
    def public(self) -> bytes: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


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
    algorithm: str = ED25519

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
        """JSON-ready form for publication (public key in standard base64; ``algorithm`` only when it
        is not Ed25519, so Ed25519 records stay as they were published before)."""
        data: dict[str, object] = {
            "kid": self.kid,
            "public": base64.b64encode(self.public).decode("ascii"),
            "not_before": self.not_before.isoformat(),
            "not_after": None if self.not_after is None else self.not_after.isoformat(),
            "state": self.state,
        }
        if self.algorithm != ED25519:
            data["algorithm"] = self.algorithm
        return data

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
                algorithm=str(data.get("algorithm", ED25519)),
            )
        except (KeyError, ValueError, binascii.Error) as exc:
            raise CryptoError(f"malformed signing key record: {type(exc).__name__}") from exc
        if len(public) != _lengths(record.algorithm)[1] or key_id(public) != record.kid:
            raise CryptoError(f"signing key record {record.kid}: public key does not match its id")
        return record


def key_id(public: bytes) -> str:
    """The id of a public key: first 16 hex characters of its SHA-256.

    >>> key_id(bytes(32))
    '66687aadf862bd77'
    """
    return sha256_hex(public)[:KID_HEX_CHARS]


def _lengths(algorithm: str) -> tuple[int, int]:
    lengths = KEY_BYTES.get(algorithm)
    if lengths is None:
        raise CryptoError(f"unknown signature algorithm {algorithm!r} (known: {', '.join(KEY_BYTES)})")
    return lengths


def _known(algorithm: str) -> str:
    """``algorithm`` itself, once it is known to be one of :data:`KEY_BYTES`."""
    _lengths(algorithm)
    return algorithm


def _private_key(private: bytes) -> Ed25519PrivateKey:
    if len(private) != ED25519_KEY_BYTES:
        raise CryptoError(f"an Ed25519 private key is {ED25519_KEY_BYTES} bytes, got {len(private)} bytes")
    return Ed25519PrivateKey.from_private_bytes(private)


def public_key_of(private: bytes, *, algorithm: str = ED25519) -> bytes:
    """The raw public key of a private key (Ed25519: 32 bytes of a 32-byte seed)."""
    if _known(algorithm) == SM2:
        return sm2_public_key_of(private)
    return (
        _private_key(private)
        .public_key()
        .public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    )


def generate_signing_key(algorithm: str = ED25519) -> SigningKeyPair:
    """A fresh key pair (Ed25519 unless ``algorithm`` says otherwise).

    >>> pair = generate_signing_key()
    >>> pair.kid == key_id(pair.public), len(pair.public)
    (True, 32)
    >>> generate_signing_key(SM2).algorithm, len(generate_signing_key(SM2).public)
    ('sm2', 65)
    """
    if _known(algorithm) == SM2:
        return SigningKeyPair.from_private(sm2_generate(), algorithm=SM2)
    seed = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return SigningKeyPair.from_private(seed)


def sign(private: bytes, message: bytes, *, algorithm: str = ED25519) -> bytes:
    """Signature of ``message``: Ed25519 (64 bytes, RFC 8032 §5.1.6) or SM2 (DER, GB/T 32918.2 §6.1).

    >>> pair = generate_signing_key()
    >>> verify(pair.public, b"receipt", sign(pair.private, b"receipt"))
    >>> verify(pair.public, b"receipt!", sign(pair.private, b"receipt"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: Ed25519 signature does not verify under key ...
    """
    if _known(algorithm) == SM2:
        return sm2_sign(private, message)
    return _private_key(private).sign(message)


def verify(public: bytes, message: bytes, signature: bytes, *, algorithm: str = ED25519) -> None:
    """Check a signature (Ed25519: RFC 8032 §5.1.7; SM2: GB/T 32918.2 §7.1); :class:`IntegrityError`
    naming the key id if it does not verify."""
    if _known(algorithm) == SM2:
        try:
            sm2_verify(public, message, signature)
        except IntegrityError as exc:
            raise IntegrityError(f"SM2 signature does not verify under key {key_id(public)}") from exc
        return
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
