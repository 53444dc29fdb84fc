"""Crypto-shredding that holds on every store: each dataset version's key is sealed once more under a
secret of its own, kept only in the key provider and destroyed when the version is shredded.

The metadata store keeps ``seal(version_secret, kek_wrapped_data_key)``. A store may keep old copies of
that value where no overwrite reaches them: PostgreSQL's dead tuples and write-ahead log, a backup, a
replica. Once the version's secret is destroyed each such copy is noise, whatever the store did with
its pages. Executors never see this layer: the gateway opens it when it hands a job the KEK-wrapped key.

Values stored before this layer existed (a bare KEK-wrapped key, which starts with ``DSW1``) are still
read; they gain the layer when their domain's KEK is rotated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from crypto.errors import IntegrityError, KeyDestroyed
from crypto.profile import seal_data, unseal_data

_MAGIC = b"DSV1"
_AAD_LABEL = b"data-sandbox/version-key/v1|"


@runtime_checkable
class ShreddableSecrets(Protocol):
    """Named secrets that can be destroyed for good (the local keyring; a KMS or HSM in production)."""

    def secret(self, name: str) -> bytes:
        """The named secret, created on first use."""
        ...

    def existing_secret(self, name: str) -> bytes | None:
        """The named secret, or None if it never existed or was destroyed (never creates one)."""
        ...

    def destroy_secret(self, name: str) -> bool:
        """Forget the named secret; True if it existed."""
        ...


def secret_name(key_aad: str) -> str:
    """The name of a version's secret (``key_aad`` names the version: ``domain/dataset/version``).

    >>> secret_name("health-bureau/citizens/ab12")
    'version-key/health-bureau/citizens/ab12'
    """
    return f"version-key/{key_aad}"


def is_sealed(stored: bytes) -> bool:
    """Whether ``stored`` carries the version layer (older values are bare KEK-wrapped keys).

    >>> is_sealed(b"DSV1" + bytes(40)), is_sealed(b"DSW1" + bytes(40))
    (True, False)
    """
    return stored.startswith(_MAGIC)


class VersionKeys:
    """Seal, open and destroy the version layer of stored data keys."""

    def __init__(
        self, secrets: ShreddableSecrets, *, key_of: Callable[[bytes], bytes] = lambda secret: secret
    ) -> None:
        """``key_of`` turns a version's 32-byte secret into the key that seals its layer: the profile's
        (``crypto.profile.CryptoProfile.aead_key``; an SM4 key under ``gm``), the secret itself by
        default (AES-256-GCM)."""
        self._secrets = secrets
        self._key_of = key_of

    def seal(self, key_aad: str, wrapped: bytes) -> bytes:
        """What the store keeps for a version whose KEK-wrapped data key is ``wrapped``."""
        secret = self._secrets.secret(secret_name(key_aad))
        return _MAGIC + seal_data(self._key_of(secret), wrapped, aad=_AAD_LABEL + key_aad.encode("utf-8"))

    def open(self, key_aad: str, stored: bytes) -> bytes:
        """The KEK-wrapped data key; :class:`KeyDestroyed` once the version was shredded."""
        if not is_sealed(stored):
            return stored
        secret = self._secrets.existing_secret(secret_name(key_aad))
        if secret is None:
            raise KeyDestroyed(f"the key of dataset version {key_aad} was destroyed (crypto-shredded)")
        try:
            key = self._key_of(secret)
            return unseal_data(key, stored[len(_MAGIC) :], aad=_AAD_LABEL + key_aad.encode("utf-8"))
        except IntegrityError as exc:
            raise IntegrityError(
                f"the stored key of dataset version {key_aad} failed authentication: tampered bytes"
            ) from exc

    def destroy(self, key_aad: str) -> bool:
        """Destroy the version's secret: every copy of its stored key, wherever it survives, is noise."""
        return self._secrets.destroy_secret(secret_name(key_aad))
