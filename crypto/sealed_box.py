"""Public-key sealing of one message to one recipient: HPKE (RFC 9180) through ``cryptography``.

Base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM: each call draws a fresh ephemeral
key, and ``info`` binds the ciphertext to its context. A recipient's key pair is derived from a
secret it holds (``derive_key``), so a party that runs round by round in fresh processes gets the
same key pair back without storing it.

>>> private, public = box_keys(bytes(32), "demo")
>>> blob = seal_to(public, b"share", info=b"job-1")
>>> open_sealed(private, blob, info=b"job-1")
b'share'
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.errors import IntegrityError
from crypto.pseudonym import derive_key

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
PUBLIC_BYTES = 32


def box_keys(secret: bytes, label: str) -> tuple[bytes, bytes]:
    """The X25519 key pair (private, public; raw bytes) derived from ``secret`` for ``label``.

    >>> same, other = box_keys(bytes(32), "a"), box_keys(bytes(32), "b")
    >>> same == box_keys(bytes(32), "a"), same == other
    (True, False)
    """
    private = x25519.X25519PrivateKey.from_private_bytes(derive_key(secret, "sealed-box:" + label))
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private.private_bytes_raw(), public


def seal_to(public: bytes, plaintext: bytes, *, info: bytes) -> bytes:
    """``plaintext`` sealed to the holder of ``public``'s private key, bound to ``info``."""
    if len(public) != PUBLIC_BYTES:
        raise IntegrityError(f"a recipient's public key is {PUBLIC_BYTES} bytes")
    return _SUITE.encrypt(plaintext, x25519.X25519PublicKey.from_public_bytes(public), info=info)


def open_sealed(private: bytes, blob: bytes, *, info: bytes) -> bytes:
    """The plaintext of ``blob``; ``IntegrityError`` for another recipient, another context or a tamper.

    >>> private, public = box_keys(bytes(32), "demo")
    >>> open_sealed(box_keys(bytes(32), "other")[0], seal_to(public, b"x", info=b"i"), info=b"i")
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: a sealed message does not open: another recipient, context or a tamper
    """
    try:
        return _SUITE.decrypt(blob, x25519.X25519PrivateKey.from_private_bytes(private), info=info)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            "a sealed message does not open: another recipient, context or a tamper"
        ) from exc
