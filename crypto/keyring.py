"""Key-encryption keys, named secrets and signing keys: the ``KeyProvider`` seam and the local keyring.

Envelope encryption (docs/design.md §9): every dataset version has its own random data key; that data key is
stored only *wrapped* (AES-256-GCM encrypted) under its domain's key-encryption key (KEK). A wrapped
key names the KEK that wrapped it, so after :meth:`KeyProvider.rotate` the older KEKs still unwrap
and :meth:`KeyProvider.rewrap` moves a data key to the current KEK without touching the data.

**The KMS seam.** :class:`KeyProvider` is the whole interface the rest of the system uses for KEKs and
named secrets. :class:`LocalKeyring` (one JSON file, mode 0600) is the embedded default. An adapter for
an external KMS (AWS KMS, Google Cloud KMS, HashiCorp Vault Transit, a PKCS#11 HSM) implements the same
six methods: ``wrap``/``unwrap``/``rewrap`` map to the KMS's encrypt/decrypt (or re-encrypt) calls with
``aad`` passed as the KMS's encryption context, ``rotate`` to its key-version rotation, and ``secret``
to a secrets-manager entry. The KEK then never leaves the KMS; only wrapped data keys are stored here.
Signing keys (:meth:`LocalKeyring.signing_keys` and friends) are local-keyring only for now.

**Crypto-shredding** needs no operation here: a version's data key exists only in wrapped form in the
metadata store, so deleting that wrapped key (and any copy of it) makes the version unrecoverable even
to someone who holds the KEK. Callers report a deleted key with :class:`crypto.errors.KeyDestroyed`.

**The keyring file** holds, per domain, a list of KEKs (``kid``, ``key``, ``created_at``, ``state``,
newest ``current``, older ``retired``), named 32-byte secrets, and Ed25519 signing keys (``kid``,
``private``, ``public``, ``not_before``, ``not_after``, ``state``). It is created with mode 0600 and
every change replaces it atomically (temporary file in the same directory, ``fsync``, ``os.replace``,
``fsync`` of the directory). A file readable or writable by group or others is refused. Changes are
serialised by a lock within the process and by ``flock`` on a sidecar ``<file>.lock`` across processes,
and each change re-reads the file under that lock, so two processes rotating at once lose nothing.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets as _random
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from crypto.envelope import DATA_KEY_BYTES, new_data_key, seal, unseal
from crypto.errors import CryptoError, IntegrityError, KeyringError, UnknownKey
from crypto.signing import (
    ED25519_KEY_BYTES,
    SigningKeyPair,
    SigningKeyRecord,
    generate_signing_key,
    key_id,
    public_key_of,
)

__all__ = [
    "KekRecord",
    "KeyProvider",
    "LocalKeyring",
    "SigningKeyRecord",
    "kek_id_of",
]

FILE_FORMAT = "data-sandbox-keyring"
FILE_VERSION = 1
SECRET_BYTES = 32
CURRENT = "current"
RETIRED = "retired"

# Wrapped data key: MAGIC || len(kid) (1 byte) || kid (ASCII) || nonce || ciphertext+tag.
_WRAP_MAGIC = b"DSW1"
_WRAP_AAD_LABEL = b"data-sandbox/wrap/v1"

T = TypeVar("T")


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


def kek_id_of(wrapped: bytes) -> str:
    """The id of the KEK that wrapped ``wrapped``; :class:`IntegrityError` if the blob is malformed.

    >>> kek_id_of(b"DSW1" + bytes([4]) + b"k123" + bytes(28))
    'k123'
    """
    return _split_wrapped(wrapped)[0]


def _split_wrapped(wrapped: bytes) -> tuple[str, bytes]:
    header = len(_WRAP_MAGIC) + 1
    if len(wrapped) < header or not wrapped.startswith(_WRAP_MAGIC):
        raise IntegrityError("wrapped data key is malformed: it does not start with the wrapped-key header")
    kid_len = wrapped[len(_WRAP_MAGIC)]
    kid_bytes = wrapped[header : header + kid_len]
    if kid_len == 0 or len(kid_bytes) != kid_len or not kid_bytes.isascii():
        raise IntegrityError("wrapped data key is malformed: its key-encryption key id is damaged")
    return kid_bytes.decode("ascii"), wrapped[header + kid_len :]


def _wrap_aad(domain: str, kid: str, aad: bytes) -> bytes:
    # Length-prefixed so that no (domain, kid, aad) triple can collide with another.
    parts = (_WRAP_AAD_LABEL, domain.encode("utf-8"), kid.encode("ascii"), aad)
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class _Kek:
    kid: str
    key: bytes = field(repr=False)
    created_at: str
    state: str


@dataclass(frozen=True)
class _Secret:
    key: bytes = field(repr=False)
    created_at: str


@dataclass(frozen=True)
class _SigningEntry:
    kid: str
    private: bytes = field(repr=False)
    public: bytes
    not_before: datetime
    not_after: datetime | None
    state: str

    def record(self) -> SigningKeyRecord:
        return SigningKeyRecord(
            kid=self.kid,
            public=self.public,
            not_before=self.not_before,
            not_after=self.not_after,
            state=self.state,
        )


@dataclass(frozen=True)
class _State:
    domains: Mapping[str, tuple[_Kek, ...]] = field(default_factory=dict)
    secrets: Mapping[str, _Secret] = field(default_factory=dict)
    signing: tuple[_SigningEntry, ...] = ()

    def to_json(self) -> bytes:
        doc = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "domains": {
                name: [
                    {"kid": k.kid, "key": _b64(k.key), "created_at": k.created_at, "state": k.state}
                    for k in keks
                ]
                for name, keks in self.domains.items()
            },
            "secrets": {
                name: {"key": _b64(s.key), "created_at": s.created_at} for name, s in self.secrets.items()
            },
            "signing_keys": [
                {
                    "kid": s.kid,
                    "private": _b64(s.private),
                    "public": _b64(s.public),
                    "not_before": s.not_before.isoformat(),
                    "not_after": None if s.not_after is None else s.not_after.isoformat(),
                    "state": s.state,
                }
                for s in self.signing
            ],
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parse_state(raw: bytes, path: Path) -> _State:
    """Parse and validate the file; errors name the file and the problem, never a value."""

    def bad(what: str) -> KeyringError:
        return KeyringError(f"keyring file {path} is malformed: {what}; restore it from a backup")

    def key_bytes(entry: Mapping[str, object], name: str, size: int, where: str) -> bytes:
        try:
            value = base64.b64decode(str(entry[name]), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise bad(f"{where}: field {name!r} is missing or not base64") from exc
        if len(value) != size:
            raise bad(f"{where}: field {name!r} must be {size} bytes")
        return value

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # The decoder's message quotes the document, which holds keys: report only the position.
        raise bad(f"not valid JSON (at byte {getattr(exc, 'pos', '?')})") from None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise bad("it is not a Data Sandbox keyring")
    if doc.get("version") != FILE_VERSION:
        raise bad(f"unsupported version {doc.get('version')!r} (this build reads version {FILE_VERSION})")
    try:
        domains: dict[str, tuple[_Kek, ...]] = {}
        for name, entries in dict(doc["domains"]).items():
            keks = tuple(
                _Kek(
                    kid=str(e["kid"]),
                    key=key_bytes(e, "key", DATA_KEY_BYTES, f"domain {name!r}"),
                    created_at=str(e["created_at"]),
                    state=str(e["state"]),
                )
                for e in entries
            )
            if [k.state for k in keks].count(CURRENT) != 1 or keks[-1].state != CURRENT:
                raise bad(f"domain {name!r} must have exactly one current key-encryption key, the newest")
            domains[str(name)] = keks
        secret_map = {
            str(name): _Secret(
                key=key_bytes(e, "key", SECRET_BYTES, f"secret {name!r}"), created_at=str(e["created_at"])
            )
            for name, e in dict(doc["secrets"]).items()
        }
        signing: list[_SigningEntry] = []
        for e in doc["signing_keys"]:
            where = f"signing key {e.get('kid')!r}"
            private = key_bytes(e, "private", ED25519_KEY_BYTES, where)
            public = key_bytes(e, "public", ED25519_KEY_BYTES, where)
            if public_key_of(private) != public or key_id(public) != e["kid"]:
                raise bad(f"{where}: private key, public key and id do not belong together")
            signing.append(
                _SigningEntry(
                    kid=str(e["kid"]),
                    private=private,
                    public=public,
                    not_before=datetime.fromisoformat(str(e["not_before"])),
                    not_after=None if e["not_after"] is None else datetime.fromisoformat(str(e["not_after"])),
                    state=str(e["state"]),
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"unexpected structure ({type(exc).__name__})") from None
    return _State(domains=domains, secrets=secret_map, signing=tuple(signing))


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise CryptoError("signing key times must be timezone-aware (for example datetime.now(UTC))")
    return now


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalKeyring:
    """The embedded :class:`KeyProvider`: one JSON file with mode 0600. Build with :meth:`open`."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime]) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._clock = clock
        self._lock = threading.RLock()
        self._cached: tuple[tuple[int, int, int], _State] | None = None

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def open(
        cls, path: Path, *, create: bool = False, clock: Callable[[], datetime] | None = None
    ) -> LocalKeyring:
        """Open the keyring at ``path``; with ``create=True`` make an empty one (mode 0600) if missing.

        Raises :class:`KeyringError` if the file is missing (without ``create``), malformed, or readable
        or writable by group or others.
        """
        keyring = cls(Path(path), clock=clock or _utc_now)
        if create:
            keyring._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with keyring._lock, keyring._file_lock():
                if not keyring._path.exists():
                    keyring._write(_State())
        elif not keyring._path.exists():
            raise KeyringError(
                f"no keyring file at {keyring._path}; initialise the deployment first (it creates one)"
            )
        with keyring._lock:
            keyring._state()
        return keyring

    # -- KeyProvider -------------------------------------------------------------------------------

    def ensure_domain(self, domain: str) -> str:
        _check_name(domain, "domain")
        with self._lock:
            keks = self._state().domains.get(domain)
            if keks:
                return keks[-1].kid

        def change(state: _State) -> tuple[_State, str]:
            existing = state.domains.get(domain)
            if existing:
                return state, existing[-1].kid
            kek = self._new_kek()
            return replace(state, domains={**state.domains, domain: (kek,)}), kek.kid

        return self._mutate(change)

    def rotate(self, domain: str) -> str:
        def change(state: _State) -> tuple[_State, str]:
            old = state.domains.get(domain)
            if not old:
                raise UnknownKey(f"domain {domain!r} has no key-encryption key to rotate; create it first")
            kek = self._new_kek()
            keks = (*(replace(k, state=RETIRED) for k in old), kek)
            return replace(state, domains={**state.domains, domain: keks}), kek.kid

        return self._mutate(change)

    def wrap(self, domain: str, data_key: bytes, *, aad: bytes) -> bytes:
        with self._lock:
            keks = self._state().domains.get(domain)
        if not keks:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key; call ensure_domain first")
        current = keks[-1]
        kid = current.kid.encode("ascii")
        sealed = seal(current.key, data_key, aad=_wrap_aad(domain, current.kid, aad))
        return _WRAP_MAGIC + bytes([len(kid)]) + kid + sealed

    def unwrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        kid, sealed = _split_wrapped(wrapped)
        kek = self._find_kek(domain, kid)
        try:
            return unseal(kek.key, sealed, aad=_wrap_aad(domain, kid, aad))
        except IntegrityError as exc:
            raise IntegrityError(
                f"wrapped data key for domain {domain!r} (key-encryption key {kid}) failed authentication: "
                "wrong associated data or tampered bytes"
            ) from exc

    def rewrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        return self.wrap(domain, self.unwrap(domain, wrapped, aad=aad), aad=aad)

    def secret(self, name: str) -> bytes:
        _check_name(name, "secret name")
        with self._lock:
            found = self._state().secrets.get(name)
            if found is not None:
                return found.key

        def change(state: _State) -> tuple[_State, bytes]:
            existing = state.secrets.get(name)
            if existing is not None:
                return state, existing.key
            created = _Secret(key=_random.token_bytes(SECRET_BYTES), created_at=self._stamp())
            return replace(state, secrets={**state.secrets, name: created}), created.key

        return self._mutate(change)

    def existing_secret(self, name: str) -> bytes | None:
        """The named secret, or None when it never existed or was destroyed; never creates one."""
        _check_name(name, "secret name")
        with self._lock:
            found = self._state().secrets.get(name)
        return None if found is None else found.key

    def destroy_secret(self, name: str) -> bool:
        """Forget a named secret for good (crypto-shredding); True if it existed. The keyring file is
        rewritten without it (replaced atomically, like every write)."""
        _check_name(name, "secret name")

        def change(state: _State) -> tuple[_State, bool]:
            if name not in state.secrets:
                return state, False
            kept = {key: value for key, value in state.secrets.items() if key != name}
            return replace(state, secrets=kept), True

        return self._mutate(change)

    # -- inspection --------------------------------------------------------------------------------

    def domains(self) -> list[str]:
        """Domains that have a KEK, sorted."""
        with self._lock:
            return sorted(self._state().domains)

    def domain_keys(self, domain: str) -> list[KekRecord]:
        """The domain's KEKs, oldest first, without key material; :class:`UnknownKey` if none."""
        with self._lock:
            keks = self._state().domains.get(domain)
        if not keks:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key")
        return [KekRecord(kid=k.kid, created_at=k.created_at, state=k.state) for k in keks]

    # -- signing keys ------------------------------------------------------------------------------

    def signing_keys(self) -> list[SigningKeyRecord]:
        """Every signing key ever used, oldest first, as publishable records (no private keys)."""
        with self._lock:
            return [entry.record() for entry in self._state().signing]

    def current_signing_key(self) -> SigningKeyPair:
        """The key pair that signs now; :class:`UnknownKey` before the first one is created."""
        with self._lock:
            signing = self._state().signing
        if not signing:
            raise UnknownKey(
                "the keyring has no signing key yet; create one with rotate_signing_key(now=...)"
            )
        current = signing[-1]
        return SigningKeyPair(kid=current.kid, private=current.private, public=current.public)

    def ensure_signing_key(self, *, now: datetime) -> SigningKeyPair:
        """The current signing key, creating the first one (valid from ``now``) if there is none."""
        _aware(now)

        def change(state: _State) -> tuple[_State, None]:
            if state.signing:
                return state, None
            return replace(state, signing=(self._new_signing(now),)), None

        with self._lock:
            has_one = bool(self._state().signing)
        if not has_one:
            self._mutate(change)
        return self.current_signing_key()

    def rotate_signing_key(self, *, now: datetime) -> SigningKeyPair:
        """Make a new signing key current from ``now``; the old one ends at ``now`` but stays published."""
        _aware(now)

        def change(state: _State) -> tuple[_State, None]:
            old = state.signing
            if old and now < old[-1].not_before:
                raise CryptoError(
                    f"cannot rotate at {now.isoformat()}: the current signing key {old[-1].kid} is valid "
                    f"only from {old[-1].not_before.isoformat()}"
                )
            retired = tuple(
                replace(e, state=RETIRED, not_after=now if e.not_after is None else e.not_after) for e in old
            )
            return replace(state, signing=(*retired, self._new_signing(now))), None

        self._mutate(change)
        return self.current_signing_key()

    # -- internals ---------------------------------------------------------------------------------

    def _stamp(self) -> str:
        return self._clock().isoformat()

    def _new_kek(self) -> _Kek:
        return _Kek(kid=_random.token_hex(8), key=new_data_key(), created_at=self._stamp(), state=CURRENT)

    @staticmethod
    def _new_signing(now: datetime) -> _SigningEntry:
        pair = generate_signing_key()
        return _SigningEntry(
            kid=pair.kid,
            private=pair.private,
            public=pair.public,
            not_before=now,
            not_after=None,
            state=CURRENT,
        )

    def _find_kek(self, domain: str, kid: str) -> _Kek:
        with self._lock:
            for attempt in range(2):
                # A miss may mean another process rotated since we cached: re-read once, then give up.
                state = self._state() if attempt == 0 else self._reload()
                for kek in state.domains.get(domain, ()):
                    if kek.kid == kid:
                        return kek
        if domain not in state.domains:
            raise UnknownKey(f"domain {domain!r} has no key-encryption key in {self._path}")
        raise UnknownKey(
            f"domain {domain!r} has no key-encryption key {kid!r} in {self._path}; the data key was wrapped "
            "by another domain or another keyring"
        )

    def _state(self) -> _State:
        """The file's state, from cache when the file has not been replaced since (caller holds the lock)."""
        try:
            st = self._path.stat()
        except OSError as exc:
            raise KeyringError(f"cannot read keyring file {self._path}: {exc.strerror}") from exc
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        self._check_mode(st.st_mode)  # a chmod does not change the signature: check on every use
        if self._cached is not None and self._cached[0] == signature:
            return self._cached[1]
        return self._reload()

    def _reload(self) -> _State:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except OSError as exc:
            raise KeyringError(f"cannot read keyring file {self._path}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            self._check_mode(st.st_mode)
            raw = handle.read()
        state = _parse_state(raw, self._path)
        self._cached = ((st.st_ino, st.st_mtime_ns, st.st_size), state)
        return state

    def _check_mode(self, mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise KeyringError(f"keyring path {self._path} is not a regular file")
        if mode & 0o077:
            raise KeyringError(
                f"keyring file {self._path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); keys must be private to their owner: "
                f"run `chmod 600 {self._path}` and check that nobody else copied it"
            )

    def _mutate(self, change: Callable[[_State], tuple[_State, T]]) -> T:
        with self._lock, self._file_lock():
            state = self._reload()  # never trust the cache for a read-modify-write
            new_state, result = change(state)
            if new_state is not state:
                self._write(new_state)
            return result

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        # flock on a sidecar file: the keyring itself is replaced on every write, so a lock on it
        # would be a lock on a file that no longer exists.
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyringError(f"cannot open keyring lock file {self._lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write(self, state: _State) -> None:
        directory = self._path.parent
        tmp = directory / f".{self._path.name}.{_random.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # the umask can only narrow the mode; make it exact
                handle.write(state.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self._path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KeyringError(f"cannot write keyring file {self._path}: {exc.strerror}") from exc
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        self._cached = None


def _check_name(name: str, what: str) -> None:
    if not name or not name.isprintable():
        raise CryptoError(f"{what} must be a non-empty printable string")
