"""Algorithm profiles: which hash, AEAD and signature a deployment uses, chosen once at ``sandbox init``.

* ``international`` (the default, and everything written before profiles existed): SHA-256 (FIPS
  180-4), AES-256-GCM (NIST SP 800-38D), Ed25519 (RFC 8032).
* ``gm`` (the Chinese national algorithms, :mod:`crypto.sm`): SM3 (GB/T 32905), SM4-GCM (GB/T 32907
  with GCM as RFC 8998 §3.1 specifies), SM2 with SM3 (GB/T 32918.2).

A profile is data (a frozen :class:`CryptoProfile`), passed in like any setting; nothing reads a global.
What a profile writes names itself, so verification never needs to be told the profile: an audit event's
``format``, a checkpoint's ``type`` and a receipt's ``type`` say which hash and signature they use
(:data:`EVENT_FORMAT_BY_PROFILE` and friends in :mod:`crypto.audit`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from crypto import envelope, sm
from crypto.errors import CryptoError
from crypto.hashing import sha256_hex
from crypto.signing import ED25519, SM2, Signer

INTERNATIONAL = "international"
GM = "gm"


class Hasher(Protocol):
    """An incremental hash: ``hashlib.sha256()`` or :class:`crypto.sm.Sm3`."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class SealFn(Protocol):
    """``seal(key, plaintext, *, aad) -> nonce || ciphertext || tag`` (:func:`crypto.envelope.seal`)."""

    def __call__(self, key: bytes, plaintext: bytes, /, *, aad: bytes) -> bytes: ...


class UnsealFn(Protocol):
    """``unseal(key, blob, *, aad) -> plaintext``; :class:`IntegrityError` if anything was tampered."""

    def __call__(self, key: bytes, blob: bytes, /, *, aad: bytes) -> bytes: ...


@dataclass(frozen=True)
class Aead:
    """An authenticated cipher with bound associated data; blobs are ``nonce || ciphertext || tag``."""

    name: str
    key_bytes: int
    new_key: Callable[[], bytes]
    seal: SealFn
    unseal: UnsealFn


AES_256_GCM = Aead(
    name="AES-256-GCM",
    key_bytes=envelope.DATA_KEY_BYTES,
    new_key=envelope.new_data_key,
    seal=envelope.seal,
    unseal=envelope.unseal,
)
SM4_GCM = Aead(
    name="SM4-GCM",
    key_bytes=sm.SM4_KEY_BYTES,
    new_key=sm.new_sm4_key,
    seal=sm.sm4_gcm_seal,
    unseal=sm.sm4_gcm_unseal,
)


#: Data keys and key-encryption keys name their cipher by their length: the profile chose the cipher
#: when it made the key (``Aead.new_key``), and every seal and unseal with that key follows it. AES-128
#: is no cipher of ours, so a 16-byte key is always SM4 and a 32-byte key always AES-256.
_AEAD_BY_KEY_BYTES: Mapping[int, Aead] = {AES_256_GCM.key_bytes: AES_256_GCM, SM4_GCM.key_bytes: SM4_GCM}


def aead_for_key(key: bytes) -> Aead:
    """The cipher a data key or key-encryption key was made for; :class:`CryptoError` for another length.

    >>> aead_for_key(bytes(32)).name, aead_for_key(bytes(16)).name
    ('AES-256-GCM', 'SM4-GCM')
    """
    aead = _AEAD_BY_KEY_BYTES.get(len(key))
    if aead is None:
        raise CryptoError(f"a data key is 32 bytes (AES-256-GCM) or 16 bytes (SM4-GCM), got {len(key)} bytes")
    return aead


def seal_data(key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """:func:`crypto.envelope.seal` or :func:`crypto.sm.sm4_gcm_seal`, as the key was made for.

    >>> sm4_key = PROFILES["gm"].aead.new_key()
    >>> unseal_data(sm4_key, seal_data(sm4_key, b"rows", aad=b"p0"), aad=b"p0")
    b'rows'
    """
    return aead_for_key(key).seal(key, plaintext, aad=aad)


def unseal_data(key: bytes, blob: bytes, *, aad: bytes) -> bytes:
    """Inverse of :func:`seal_data`; :class:`IntegrityError` on a wrong key, wrong aad or any tamper."""
    return aead_for_key(key).unseal(key, blob, aad=aad)


@dataclass(frozen=True)
class CryptoProfile:
    """The algorithms of one profile: ``hash_hex`` (lowercase hex, 256 bits in both profiles) and
    ``new_hash`` (the same hash, incremental), ``aead`` for envelopes and ``signature`` (an algorithm
    name of :mod:`crypto.signing`)."""

    name: str
    hash_name: str
    hash_hex: Callable[[bytes], str]
    new_hash: Callable[[], Hasher]
    aead: Aead
    signature: str

    def require_signer(self, signer: Signer) -> Signer:
        """``signer`` itself if it signs with this profile's algorithm; :class:`CryptoError` otherwise
        (a deployment initialised under one profile and started under the other).

        >>> from crypto.signing import generate_signing_key
        >>> PROFILES["gm"].require_signer(generate_signing_key())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crypto.errors.CryptoError: signing key ... is ed25519, but the gm profile signs with sm2; ...
        """
        if signer.algorithm != self.signature:
            raise CryptoError(
                f"signing key {signer.kid} is {signer.algorithm}, but the {self.name} profile signs with "
                f"{self.signature}; the deployment was initialised under another profile"
            )
        return signer

    def aead_key(self, secret: bytes) -> bytes:
        """A key of this profile's cipher from a 32-byte random keyring secret (its first
        ``aead.key_bytes`` bytes: a uniformly random secret gives a uniformly random key).

        >>> len(PROFILES["gm"].aead_key(bytes(32))), len(PROFILES["international"].aead_key(bytes(32)))
        (16, 32)
        """
        if len(secret) < self.aead.key_bytes:
            raise CryptoError(f"a secret of {len(secret)} bytes is too short for {self.aead.name}")
        return secret[: self.aead.key_bytes]


PROFILES: Mapping[str, CryptoProfile] = {
    INTERNATIONAL: CryptoProfile(
        name=INTERNATIONAL,
        hash_name="SHA-256",
        hash_hex=sha256_hex,
        new_hash=hashlib.sha256,
        aead=AES_256_GCM,
        signature=ED25519,
    ),
    GM: CryptoProfile(
        name=GM, hash_name="SM3", hash_hex=sm.sm3_hex, new_hash=sm.Sm3, aead=SM4_GCM, signature=SM2
    ),
}


def profile_named(name: str) -> CryptoProfile:
    """The profile called ``name``; :class:`CryptoError` for an unknown one.

    >>> profile_named("gm").hash_hex(b"abc")[:8], profile_named("international").hash_hex(b"abc")[:8]
    ('66c7f0f4', 'ba7816bf')
    """
    profile = PROFILES.get(name)
    if profile is None:
        raise CryptoError(f"unknown crypto profile {name!r} (known: {', '.join(PROFILES)})")
    return profile
