"""A :class:`KeyProvider` and a :class:`Signer` whose keys live in a PKCS#11 token (an HSM, or SoftHSM2).

Every domain key-encryption key is an AES-256 secret-key object created *in* the token with
``CKA_SENSITIVE`` true and ``CKA_EXTRACTABLE`` false, so no call can read or export its value; wrapping
and unwrapping are AES-256-GCM (``CKM_AES_GCM``, NIST SP 800-38D) performed by the token, with the same
associated data and the same blob layout as the local keyring (:mod:`crypto.wrapped_key`): a wrapped key
names its KEK, and is bound to its domain, its KEK and the caller's ``aad``. The signing key is an
Ed25519 key pair (``CKK_EC_EDWARDS``, ``CKM_EDDSA``) whose private half is equally non-extractable;
its signatures verify with :func:`crypto.signing.verify` like any other Ed25519 signature.

State lives in the token's object attributes, nothing on disk:

* a KEK object has label ``data-sandbox/kek/<domain>`` and ``CKA_ID`` = its kid; the *current* KEK is the
  one that may still encrypt (``CKA_ENCRYPT`` true). :meth:`Pkcs11KeyProvider.rotate` makes a new one
  and turns ``CKA_ENCRYPT`` off on the older ones, which keep ``CKA_DECRYPT`` so old wrapped keys read.
* the signing key pair has label ``data-sandbox/signing``; the current private key is the one that may
  still sign (``CKA_SIGN`` true); older public keys stay in the token.
* named secrets (:meth:`Pkcs11KeyProvider.secret`: the pseudonym, partition, results and console keys,
  and the per-version secrets of :mod:`crypto.shredding`) are generic-secret objects the token generates,
  labelled ``data-sandbox/secret/<name>``, private to the logged-in user (``CKA_PRIVATE``) but readable
  by it. Not "never leaves" keys, deliberately: every consumer computes with the secret's bytes in the
  gateway's memory (HMAC pseudonyms, partition hashing, AEAD keys), so deriving them inside the token
  from a non-extractable master (``CKM_SHA256_HMAC`` over the name) would put the same bytes in the
  same memory and protect nothing more; and a derived secret cannot be destroyed on its own, which
  crypto-shredding a version needs (:meth:`Pkcs11KeyProvider.destroy_secret` destroys the object).
  What the token adds for them is that no keyring file holds them.
* signing-key publication records (validity periods, :class:`crypto.signing.SigningKeyRecord`) are data
  objects labelled ``data-sandbox/signing-record``: public facts, kept beside the keys they describe.

Only the ``international`` profile is served: SoftHSM2 and most HSMs offer no SM4 or SM2 mechanism
through standard PKCS#11, so a ``gm`` deployment keeps the local keyring (:func:`require_profile`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _random
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error, UserAlreadyLoggedIn
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from crypto.errors import CryptoError, IntegrityError, UnknownKey
from crypto.keyring_format import CURRENT, RETIRED
from crypto.signing import ED25519, ED25519_KEY_BYTES, SigningKeyRecord, key_id
from crypto.wrapped_key import join_wrapped, split_wrapped, wrap_aad

__all__ = ["INTERNATIONAL_ONLY", "Pkcs11KeyProvider", "Pkcs11Signer", "require_profile"]

INTERNATIONAL_ONLY = "international"
_KEK_LABEL = "data-sandbox/kek/"
_SIGNING_LABEL = "data-sandbox/signing"
_SECRET_LABEL = "data-sandbox/secret/"  # noqa: S105 - an object label, not a password
_RECORD_LABEL = "data-sandbox/signing-record"
SECRET_BYTES = 32
_NONCE_BYTES = 12
_ED25519_OID = "1.3.101.112"  # RFC 8410
_NEVER_LEAVES = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True}


class _Logins:
    """Which tokens this process is logged in to, with a salted digest of the PIN that did it."""

    def __init__(self) -> None:
        self._salt = _random.token_bytes(16)
        self._digests: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def _digest(self, pin: str) -> bytes:
        return hmac.new(self._salt, pin.encode("utf-8"), hashlib.sha256).digest()

    def record(self, place: tuple[str, str], pin: str) -> None:
        with self._lock:
            self._digests[place] = self._digest(pin)

    def same(self, place: tuple[str, str], pin: str) -> bool:
        with self._lock:
            known = self._digests.get(place)
        return known is not None and hmac.compare_digest(known, self._digest(pin))

    def forget(self, place: tuple[str, str]) -> None:
        with self._lock:
            self._digests.pop(place, None)


_LOGINS = _Logins()


def require_profile(profile: str) -> None:
    """Refuse a crypto profile the token cannot serve (anything but ``international``)."""
    if profile != INTERNATIONAL_ONLY:
        raise CryptoError(
            f"the PKCS#11 key provider serves only the {INTERNATIONAL_ONLY!r} profile, not {profile!r}: "
            "standard PKCS#11 has no SM4 or SM2 mechanisms; keep the local keyring for this deployment"
        )


def _public_point(raw: bytes) -> bytes:
    """The 32-byte Ed25519 public key from ``CKA_EC_POINT``: tokens give it DER-wrapped (an OCTET
    STRING, ``04 20 ...``, as SoftHSM2 does) or raw."""
    if len(raw) == ED25519_KEY_BYTES + 2 and raw[:2] == bytes([0x04, ED25519_KEY_BYTES]):
        return raw[2:]
    if len(raw) == ED25519_KEY_BYTES:
        return raw
    raise CryptoError(f"the token returned an Ed25519 public key of {len(raw)} bytes")


class Pkcs11Signer:
    """A :class:`crypto.signing.Signer` whose Ed25519 private key stays in the token."""

    def __init__(self, provider: Pkcs11KeyProvider, handle: Any, public: bytes) -> None:
        self._provider = provider
        self._handle = handle
        self._public = public

    def __repr__(self) -> str:
        return f"Pkcs11Signer(kid={self.kid!r})"

    @property
    def kid(self) -> str:
        return key_id(self._public)

    @property
    def public(self) -> bytes:
        return self._public

    @property
    def algorithm(self) -> str:
        return ED25519

    @property
    def key_object(self) -> Any:
        """The token's private-key object (to inspect its attributes; its value cannot be read)."""
        return self._handle

    def sign(self, message: bytes) -> bytes:
        """The token's Ed25519 signature of ``message`` (RFC 8032 §5.1.6, ``CKM_EDDSA``)."""
        with self._provider.lock:
            try:
                return bytes(self._handle.sign(message, mechanism=Mechanism.EDDSA))
            except PKCS11Error as exc:
                raise CryptoError(
                    f"the token refused to sign with key {self.kid}: {type(exc).__name__}"
                ) from exc


class Pkcs11KeyProvider:
    """The :class:`crypto.key_provider.KeyProvider` backed by a PKCS#11 token. Build with :meth:`open`;
    one read-write session is held for the provider's life (:meth:`close` ends it) and used under a
    lock, because a PKCS#11 session must not run two operations at once."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._login: tuple[str, str] | None = None
        self.lock = threading.RLock()

    def __repr__(self) -> str:
        return "Pkcs11KeyProvider()"

    @classmethod
    def open(cls, library: str, *, token_label: str, pin: str) -> Pkcs11KeyProvider:
        """Log in to the token labelled ``token_label`` through the PKCS#11 module at ``library``."""
        place = (library, token_label)
        try:
            token = pkcs11.lib(library).get_token(token_label=token_label)
            try:
                session = token.open(user_pin=pin, rw=True)
                login: tuple[str, str] | None = place
            except UserAlreadyLoggedIn:
                # PKCS#11 login is per process, not per session: another provider of this process
                # logged in already and a new session shares that login. The token cannot check the
                # PIN a second time, so compare it with the one that logged in.
                if not _LOGINS.same(place, pin):
                    raise CryptoError(
                        f"cannot open PKCS#11 token {token_label!r} through {library}: PinIncorrect"
                    ) from None
                session, login = token.open(rw=True), None
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise CryptoError(
                f"cannot open PKCS#11 token {token_label!r} through {library}: {type(exc).__name__}"
            ) from exc
        if login is not None:
            _LOGINS.record(login, pin)
        provider = cls(session)
        provider._login = login
        return provider

    def close(self) -> None:
        """End the session; the one that logged in also logs the process out of the token (PKCS#11
        logs out every session of the process at once), so close it last."""
        with self.lock:
            self._session.close()
            if self._login is not None:
                _LOGINS.forget(self._login)

    # -- KeyProvider -------------------------------------------------------------------------------

    def ensure_domain(self, domain: str) -> str:
        _check_name(domain, "domain")
        with self.lock:
            current = self._current_kek(domain)
            if current is not None:
                return current
            return self._new_kek(domain)

    def rotate(self, domain: str) -> str:
        _check_name(domain, "domain")
        with self.lock:
            old = self._keks(domain)
            if not old:
                raise UnknownKey(f"domain {domain!r} has no key-encryption key to rotate; create it first")
            kid = self._new_kek(domain)
            for key in old:
                key[Attribute.ENCRYPT] = False  # retired: still decrypts, never encrypts again
            return kid

    def wrap(self, domain: str, data_key: bytes, *, aad: bytes) -> bytes:
        with self.lock:
            kid = self._current_kek(domain)
            if kid is None:
                raise UnknownKey(f"domain {domain!r} has no key-encryption key; call ensure_domain first")
            key = self._kek(domain, kid)
            nonce = _random.token_bytes(_NONCE_BYTES)
            sealed = key.encrypt(
                data_key,
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(nonce, wrap_aad(domain, kid, aad)),
            )
        return join_wrapped(kid, nonce + bytes(sealed))

    def unwrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        kid, sealed = split_wrapped(wrapped)
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        with self.lock:
            key = self._kek(domain, kid)
            try:
                return bytes(
                    key.decrypt(
                        body,
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=GCMParams(nonce, wrap_aad(domain, kid, aad)),
                    )
                )
            except PKCS11Error as exc:
                # Tokens report a failed GCM tag check variously (SoftHSM2: CKR_GENERAL_ERROR).
                raise IntegrityError(
                    f"wrapped data key for domain {domain!r} (key-encryption key {kid}) failed "
                    "authentication in the token: wrong associated data or tampered bytes"
                ) from exc

    def rewrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        return self.wrap(domain, self.unwrap(domain, wrapped, aad=aad), aad=aad)

    def secret(self, name: str) -> bytes:
        _check_name(name, "secret name")
        with self.lock:
            found = self._secret_value(name)
            if found is not None:
                return found
            self._session.generate_key(
                KeyType.GENERIC_SECRET,
                SECRET_BYTES * 8,
                id=_random.token_bytes(8),
                label=_SECRET_LABEL + name,
                store=True,
                # Readable by the logged-in user only (CKA_PRIVATE): see the module docstring for why
                # a named secret is a token object that is read, not a key that never leaves.
                template={Attribute.PRIVATE: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            )
            created = self._secret_value(name)
            assert created is not None  # just stored in this session
            return created

    def existing_secret(self, name: str) -> bytes | None:
        """The named secret, or None when it never existed or was destroyed; never creates one."""
        _check_name(name, "secret name")
        with self.lock:
            return self._secret_value(name)

    def destroy_secret(self, name: str) -> bool:
        """Destroy the named secret's token object (crypto-shredding); True if it existed."""
        _check_name(name, "secret name")
        with self.lock:
            found = self._secret_objects(name)
            for obj in found:
                obj.destroy()
            return bool(found)

    # -- inspection --------------------------------------------------------------------------------

    def domain_keys(self, domain: str) -> list[tuple[str, bool]]:
        """The domain's KEKs as ``(kid, current)``, sorted by kid; no key material (the token has it)."""
        with self.lock:
            return sorted((_kid(k), bool(k[Attribute.ENCRYPT])) for k in self._keks(domain))

    def kek_object(self, domain: str, kid: str) -> Any:
        """The token's object for one KEK (to inspect its attributes; its value cannot be read)."""
        with self.lock:
            return self._kek(domain, kid)

    # -- signing -----------------------------------------------------------------------------------

    def ensure_signing_key(self, *, now: datetime, algorithm: str = ED25519) -> Pkcs11Signer:
        """The current signing key, creating an Ed25519 pair in the token (valid from ``now``) if there
        is none. Only Ed25519: :func:`require_profile` keeps SM2 deployments off this provider."""
        _aware(now)
        if algorithm != ED25519:
            raise CryptoError(f"the PKCS#11 key provider signs with {ED25519}, not {algorithm}")
        with self.lock:
            found = self._current_signer()
            return found if found is not None else self._new_signer(now)

    def current_signing_key(self) -> Pkcs11Signer:
        """The key that signs now; :class:`UnknownKey` before the first one is created."""
        with self.lock:
            found = self._current_signer()
        if found is None:
            raise UnknownKey("the token has no signing key yet; create one with ensure_signing_key(now=...)")
        return found

    def rotate_signing_key(self, *, now: datetime) -> Pkcs11Signer:
        """A new current signing key from ``now``. The older private keys may no longer sign
        (``CKA_SIGN`` off); their records end at ``now`` and stay published, so older receipts verify."""
        _aware(now)
        with self.lock:
            records = self._records()
            if records and now < records[-1][1].not_before:
                raise CryptoError(
                    f"cannot rotate at {now.isoformat()}: the current signing key {records[-1][1].kid} "
                    f"is valid only from {records[-1][1].not_before.isoformat()}"
                )
            old = list(self._session.get_objects(_private_template()))
            signer = self._new_signer(now)
            for key in old:
                key[Attribute.SIGN] = False
            for obj, record in records:
                if record.not_after is None:
                    # A data object's value is read-only once stored (SoftHSM2): store the ended record,
                    # then drop the open one; a crash between the two leaves both, and _records keeps
                    # the ended one.
                    self._store_record(replace(record, not_after=now, state=RETIRED))
                    obj.destroy()
            return signer

    def signing_keys(self) -> list[SigningKeyRecord]:
        """Every signing key the token has held, oldest first, as publishable records."""
        with self.lock:
            return [record for _, record in self._records()]

    def domains(self) -> list[str]:
        """Domains that have a KEK in the token, sorted."""
        with self.lock:
            keys = list(self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
            labels = {str(k[Attribute.LABEL]) for k in keys}
        return sorted(label[len(_KEK_LABEL) :] for label in labels if label.startswith(_KEK_LABEL))

    # -- internals ---------------------------------------------------------------------------------

    def _keks(self, domain: str) -> list[Any]:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: _KEK_LABEL + domain}
        return list(self._session.get_objects(template))

    def _current_kek(self, domain: str) -> str | None:
        current = sorted(_kid(k) for k in self._keks(domain) if k[Attribute.ENCRYPT])
        # Normally one; a rotation cut short between its two steps leaves two, both able to unwrap.
        return current[-1] if current else None

    def _kek(self, domain: str, kid: str) -> Any:
        template = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.LABEL: _KEK_LABEL + domain,
            Attribute.ID: kid.encode("ascii"),
        }
        found = list(self._session.get_objects(template))
        if not found:
            raise UnknownKey(
                f"domain {domain!r} has no key-encryption key {kid!r} in the token; the data key was "
                "wrapped by another domain or another key provider"
            )
        return found[0]

    def _new_kek(self, domain: str) -> str:
        kid = _random.token_hex(8)
        self._session.generate_key(
            KeyType.AES,
            256,
            id=kid.encode("ascii"),
            label=_KEK_LABEL + domain,
            store=True,
            template={**_NEVER_LEAVES, Attribute.ENCRYPT: True, Attribute.DECRYPT: True},
        )
        return kid

    def _secret_objects(self, name: str) -> list[Any]:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: _SECRET_LABEL + name}
        return list(self._session.get_objects(template))

    def _secret_value(self, name: str) -> bytes | None:
        # Two processes creating the same secret at once each store one; every reader then takes the
        # lowest CKA_ID, so all agree from the moment both exist.
        found = sorted(self._secret_objects(name), key=lambda o: bytes(o[Attribute.ID]))
        return bytes(found[0][Attribute.VALUE]) if found else None

    def _current_signer(self) -> Pkcs11Signer | None:
        # Always list() a search: PKCS#11 allows one find operation per session at a time, so a search
        # left open (or a nested one) fails with CKR_OPERATION_ACTIVE.
        for private in list(self._session.get_objects(_private_template())):
            if private[Attribute.SIGN]:
                return Pkcs11Signer(self, private, self._public_of(private))
        return None

    def _public_of(self, private: Any) -> bytes:
        template = {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.LABEL: _SIGNING_LABEL,
            Attribute.ID: bytes(private[Attribute.ID]),
        }
        for public in list(self._session.get_objects(template)):
            return _public_point(bytes(public[Attribute.EC_POINT]))
        raise UnknownKey("the token holds a signing private key without its public key")

    def _new_signer(self, now: datetime) -> Pkcs11Signer:
        public, private = self._session.generate_keypair(
            KeyType.EC_EDWARDS,
            id=_random.token_bytes(8),
            label=_SIGNING_LABEL,
            store=True,
            public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(_ED25519_OID)},
            private_template={**_NEVER_LEAVES, Attribute.SIGN: True},
        )
        signer = Pkcs11Signer(self, private, _public_point(bytes(public[Attribute.EC_POINT])))
        record = SigningKeyRecord(
            kid=signer.kid, public=signer.public, not_before=now, not_after=None, state=CURRENT
        )
        self._store_record(record)
        return signer

    def _store_record(self, record: SigningKeyRecord) -> None:
        self._session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.LABEL: _RECORD_LABEL,
                Attribute.TOKEN: True,
                Attribute.VALUE: _record_bytes(record),
            }
        )

    def _records(self) -> list[tuple[Any, SigningKeyRecord]]:
        template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: _RECORD_LABEL}
        found = [
            (obj, SigningKeyRecord.from_dict(json.loads(bytes(obj[Attribute.VALUE]))))
            for obj in list(self._session.get_objects(template))
        ]
        ended = {record.kid for _, record in found if record.not_after is not None}
        kept = [(obj, r) for obj, r in found if r.not_after is not None or r.kid not in ended]
        return sorted(kept, key=lambda pair: pair[1].not_before)


def _record_bytes(record: SigningKeyRecord) -> bytes:
    return json.dumps(record.to_dict(), sort_keys=True).encode("utf-8")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise CryptoError("signing key times must be timezone-aware (for example datetime.now(UTC))")
    return now


def _private_template() -> dict[Attribute, Any]:
    return {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: _SIGNING_LABEL}


def _kid(key: Any) -> str:
    return bytes(key[Attribute.ID]).decode("ascii")


def _check_name(name: str, what: str) -> None:
    if not name or not name.isprintable():
        raise CryptoError(f"{what} must be a non-empty printable string")
