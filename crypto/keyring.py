"""The local keyring: key-encryption keys, named secrets and signing keys kept in one private file.

Envelope encryption (docs/design.md §9): every dataset version has its own random data key; that data key is
stored only *wrapped* (AES-256-GCM encrypted) under its domain's key-encryption key (KEK). A wrapped
key names the KEK that wrapped it (:mod:`crypto.wrapped_key`), so after :meth:`KeyProvider.rotate` the
older KEKs still unwrap and :meth:`KeyProvider.rewrap` moves a data key to the current KEK without
touching the data.

:class:`KeyProvider` (:mod:`crypto.key_provider`) is the whole interface the rest of the system uses for
KEKs and named secrets; :class:`LocalKeyring` is its embedded implementation, and an external KMS plugs
in behind the same six methods. Signing keys (:meth:`LocalKeyring.signing_keys` and friends) are
local-keyring only for now. What the file holds is :mod:`crypto.keyring_format`; how it is kept private,
read and replaced atomically under a lock is :mod:`crypto.keyring_file`.

**Crypto-shredding** needs no operation here: a version's data key exists only in wrapped form in the
metadata store, so deleting that wrapped key (and any copy of it) makes the version unrecoverable even
to someone who holds the KEK. Callers report a deleted key with :class:`crypto.errors.KeyDestroyed`.
Named secrets can be destroyed (:meth:`LocalKeyring.destroy_secret`) for the per-version layer of
:mod:`crypto.shredding`.

``KeyProvider``, ``KekRecord``, ``SigningKeyRecord`` and ``kek_id_of`` are importable from here, where
callers have always found them.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from crypto.envelope import new_data_key
from crypto.errors import CryptoError, IntegrityError, KeyringError, UnknownKey
from crypto.key_provider import KekRecord, KeyProvider
from crypto.keyring_file import KeyringFile
from crypto.keyring_format import (
    CURRENT,
    RETIRED,
    SECRET_BYTES,
    Kek,
    KeyringState,
    Secret,
    SigningEntry,
)
from crypto.profile import seal_data, unseal_data
from crypto.signing import ED25519, SigningKeyPair, SigningKeyRecord, generate_signing_key
from crypto.wrapped_key import join_wrapped, kek_id_of, split_wrapped, wrap_aad

__all__ = [
    "KekRecord",
    "KeyProvider",
    "LocalKeyring",
    "SigningKeyRecord",
    "kek_id_of",
]


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise CryptoError("signing key times must be timezone-aware (for example datetime.now(UTC))")
    return now


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalKeyring:
    """The embedded :class:`KeyProvider`: one JSON file with mode 0600. Build with :meth:`open`."""

    def __init__(
        self, path: Path, *, clock: Callable[[], datetime], new_kek: Callable[[], bytes] = new_data_key
    ) -> None:
        self._file = KeyringFile(path)
        self._clock = clock
        self._new_kek_key = new_kek

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self._file.path)!r})"

    @property
    def path(self) -> Path:
        return self._file.path

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        create: bool = False,
        clock: Callable[[], datetime] | None = None,
        new_kek: Callable[[], bytes] = new_data_key,
    ) -> LocalKeyring:
        """Open the keyring at ``path``; with ``create=True`` make an empty one (mode 0600) if missing.
        ``new_kek`` makes new key-encryption keys: the profile's cipher (``crypto.profile``); a KEK
        wraps with the cipher it was made for, whatever made it.

        Raises :class:`KeyringError` if the file is missing (without ``create``), malformed, or readable
        or writable by group or others.
        """
        keyring = cls(Path(path), clock=clock or _utc_now, new_kek=new_kek)
        if create:
            keyring._file.create_if_missing()
        elif not keyring._file.exists():
            raise KeyringError(
                f"no keyring file at {keyring.path}; initialise the deployment first (it creates one)"
            )
        keyring._file.state()  # refuse a malformed or too-open file now, not at first use
        return keyring

    # -- KeyProvider -------------------------------------------------------------------------------

    def ensure_domain(self, domain: str) -> str:
        _check_name(domain, "domain")
        keks = self._file.state().domains.get(domain)
        if keks:
            return keks[-1].kid

        def change(state: KeyringState) -> tuple[KeyringState, str]:
            existing = state.domains.get(domain)
            if existing:
                return state, existing[-1].kid
            kek = self._new_kek()
            return replace(state, domains={**state.domains, domain: (kek,)}), kek.kid

        return self._file.mutate(change)

    def rotate(self, domain: str) -> str:
        def change(state: KeyringState) -> tuple[KeyringState, str]:
            old = state.domains.get(domain)
            if not old:
                raise UnknownKey(f"domain {domain!r} has no key-encryption key to rotate; create it first")
            kek = self._new_kek()
            keks = (*(replace(k, state=RETIRED) for k in old), kek)
            return replace(state, domains={**state.domains, domain: keks}), kek.kid

        return self._file.mutate(change)

    def wrap(self, domain: str, data_key: bytes, *, aad: bytes) -> bytes:
        keks = self._file.state().domains.get(domain)
        if not keks:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key; call ensure_domain first")
        current = keks[-1]
        sealed = seal_data(current.key, data_key, aad=wrap_aad(domain, current.kid, aad))
        return join_wrapped(current.kid, sealed)

    def unwrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        kid, sealed = split_wrapped(wrapped)
        kek = self._find_kek(domain, kid)
        try:
            return unseal_data(kek.key, sealed, aad=wrap_aad(domain, kid, aad))
        except IntegrityError as exc:
            raise IntegrityError(
                f"wrapped data key for domain {domain!r} (key-encryption key {kid}) failed authentication: "
                "wrong associated data or tampered bytes"
            ) from exc

    def rewrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        return self.wrap(domain, self.unwrap(domain, wrapped, aad=aad), aad=aad)

    def secret(self, name: str) -> bytes:
        _check_name(name, "secret name")
        found = self._file.state().secrets.get(name)
        if found is not None:
            return found.key

        def change(state: KeyringState) -> tuple[KeyringState, bytes]:
            existing = state.secrets.get(name)
            if existing is not None:
                return state, existing.key
            created = Secret(key=_random.token_bytes(SECRET_BYTES), created_at=self._stamp())
            return replace(state, secrets={**state.secrets, name: created}), created.key

        return self._file.mutate(change)

    def existing_secret(self, name: str) -> bytes | None:
        """The named secret, or None when it never existed or was destroyed; never creates one."""
        _check_name(name, "secret name")
        found = self._file.state().secrets.get(name)
        return None if found is None else found.key

    def destroy_secret(self, name: str) -> bool:
        """Forget a named secret for good (crypto-shredding); True if it existed. The keyring file is
        rewritten without it (replaced atomically, like every write)."""
        _check_name(name, "secret name")

        def change(state: KeyringState) -> tuple[KeyringState, bool]:
            if name not in state.secrets:
                return state, False
            kept = {key: value for key, value in state.secrets.items() if key != name}
            return replace(state, secrets=kept), True

        return self._file.mutate(change)

    # -- inspection --------------------------------------------------------------------------------

    def domains(self) -> list[str]:
        """Domains that have a KEK, sorted."""
        return sorted(self._file.state().domains)

    def domain_keys(self, domain: str) -> list[KekRecord]:
        """The domain's KEKs, oldest first, without key material; :class:`UnknownKey` if none."""
        keks = self._file.state().domains.get(domain)
        if not keks:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key")
        return [KekRecord(kid=k.kid, created_at=k.created_at, state=k.state) for k in keks]

    # -- signing keys ------------------------------------------------------------------------------

    def signing_keys(self) -> list[SigningKeyRecord]:
        """Every signing key ever used, oldest first, as publishable records (no private keys)."""
        return [entry.record() for entry in self._file.state().signing]

    def current_signing_key(self) -> SigningKeyPair:
        """The key pair that signs now; :class:`UnknownKey` before the first one is created."""
        signing = self._file.state().signing
        if not signing:
            raise UnknownKey(
                "the keyring has no signing key yet; create one with rotate_signing_key(now=...)"
            )
        current = signing[-1]
        return SigningKeyPair(
            kid=current.kid, private=current.private, public=current.public, algorithm=current.algorithm
        )

    def ensure_signing_key(self, *, now: datetime, algorithm: str = ED25519) -> SigningKeyPair:
        """The current signing key, creating the first one (valid from ``now``, of ``algorithm``) if there
        is none. An existing key is returned whatever its algorithm: the caller checks it against the
        deployment's profile (:meth:`crypto.profile.CryptoProfile.require_signer`)."""
        _aware(now)

        def change(state: KeyringState) -> tuple[KeyringState, None]:
            if state.signing:
                return state, None
            return replace(state, signing=(self._new_signing(now, algorithm),)), None

        if not self._file.state().signing:
            self._file.mutate(change)
        return self.current_signing_key()

    def rotate_signing_key(self, *, now: datetime) -> SigningKeyPair:
        """Make a new signing key current from ``now``; the old one ends at ``now`` but stays published.
        The new key has the algorithm of the one it replaces (a deployment's profile does not change)."""
        _aware(now)

        def change(state: KeyringState) -> tuple[KeyringState, None]:
            old = state.signing
            if old and now < old[-1].not_before:
                raise CryptoError(
                    f"cannot rotate at {now.isoformat()}: the current signing key {old[-1].kid} is valid "
                    f"only from {old[-1].not_before.isoformat()}"
                )
            retired = tuple(
                replace(e, state=RETIRED, not_after=now if e.not_after is None else e.not_after) for e in old
            )
            algorithm = old[-1].algorithm if old else ED25519
            return replace(state, signing=(*retired, self._new_signing(now, algorithm))), None

        self._file.mutate(change)
        return self.current_signing_key()

    # -- internals ---------------------------------------------------------------------------------

    def _stamp(self) -> str:
        return self._clock().isoformat()

    def _new_kek(self) -> Kek:
        return Kek(kid=_random.token_hex(8), key=self._new_kek_key(), created_at=self._stamp(), state=CURRENT)

    @staticmethod
    def _new_signing(now: datetime, algorithm: str) -> SigningEntry:
        pair = generate_signing_key(algorithm)
        return SigningEntry(
            kid=pair.kid,
            private=pair.private,
            public=pair.public,
            not_before=now,
            not_after=None,
            state=CURRENT,
            algorithm=algorithm,
        )

    def _find_kek(self, domain: str, kid: str) -> Kek:
        with self._file.lock:
            for attempt in range(2):
                # A miss may mean another process rotated since we cached: re-read once, then give up.
                state = self._file.state() if attempt == 0 else self._file.reload()
                for kek in state.domains.get(domain, ()):
                    if kek.kid == kid:
                        return kek
        if domain not in state.domains:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key in {self.path}")
        raise UnknownKey(
            f"domain {domain!r} has no key-encryption key {kid!r} in {self.path}; the data key was wrapped "
            "by another domain or another keyring"
        )


def _check_name(name: str, what: str) -> None:
    if not name or not name.isprintable():
        raise CryptoError(f"{what} must be a non-empty printable string")
