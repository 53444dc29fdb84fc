"""The ``KeyProvider`` seam: the whole interface the rest of the system uses for KEKs and named secrets.

:class:`crypto.keyring.LocalKeyring` (one JSON file, mode 0600) is the embedded implementation. An
adapter for an external KMS (AWS KMS, Google Cloud KMS, HashiCorp Vault Transit, a PKCS#11 HSM)
implements the same six methods: ``wrap``/``unwrap``/``rewrap`` map to the KMS's encrypt/decrypt (or
re-encrypt) calls with ``aad`` passed as the KMS's encryption context, ``rotate`` to its key-version
rotation, and ``secret`` to a secrets-manager entry. The KEK then never leaves the KMS; only wrapped data
keys are stored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from crypto.signing import Signer, SigningKeyRecord

__all__ = ["DeploymentKeys", "KekRecord", "KeyProvider"]


@runtime_checkable
class KeyProvider(Protocol):
    """Key-encryption keys per domain and named secrets; see the module docstring for the KMS seam."""

    def ensure_domain(self, domain: str) -> str:
        """Create the domain's first KEK if it has none; return the current KEK id."""
        ...

    def wrap(self, domain: str, data_key: bytes, *, aad: bytes) -> bytes:
        """Encrypt ``data_key`` under the domain's current KEK, bound to ``aad``; the blob names the KEK."""
        ...

    def unwrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Recover a data key; :class:`UnknownKey` for an unknown KEK, :class:`IntegrityError` on tamper."""
        ...

    def rotate(self, domain: str) -> str:
        """Make a new KEK current for the domain and return its id; older KEKs still unwrap."""
        ...

    def rewrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Unwrap with whichever KEK wrapped it and wrap again under the current KEK."""
        ...

    def secret(self, name: str) -> bytes:
        """A named 32-byte secret, created on first use and stable afterwards."""
        ...


@dataclass(frozen=True)
class KekRecord:
    """Public facts about one KEK (never the key itself)."""

    kid: str
    created_at: str
    state: str


@runtime_checkable
class DeploymentKeys(KeyProvider, Protocol):
    """Everything a deployment keeps in its key store: the :class:`KeyProvider`, the receipt and
    checkpoint signing key with its published records, and destroyable named secrets
    (:class:`crypto.shredding.ShreddableSecrets`). :class:`crypto.keyring.LocalKeyring` (the default)
    and :class:`crypto.pkcs11_provider.Pkcs11KeyProvider` (a hardware token) both are one."""

    def domains(self) -> list[str]: ...

    def existing_secret(self, name: str) -> bytes | None: ...

    def destroy_secret(self, name: str) -> bool: ...

    def signing_keys(self) -> list[SigningKeyRecord]: ...

    def current_signing_key(self) -> Signer: ...

    def ensure_signing_key(self, *, now: datetime, algorithm: str = ...) -> Signer: ...

    def rotate_signing_key(self, *, now: datetime) -> Signer: ...
