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
  still sign (``CKA_SIGN`` true), older public keys stay in the token so :meth:`signing_publics` can
  republish them.
* named secrets (:meth:`Pkcs11KeyProvider.secret`) are HMAC-SHA256 (``CKM_SHA256_HMAC``) of the name
  under one non-extractable generic-secret key: stable without storing anything, and the master key
  never leaves the token. The derived secret itself is returned to the caller, as it must be (the
  pseudonym and partition code computes with it in memory), so this protects the master, not its
  outputs. Destroyable per-version secrets (:mod:`crypto.shredding`) are *not* derived here: a derived
  value cannot be destroyed on its own, so those stay in the local keyring.

Only the ``international`` profile is served: SoftHSM2 and most HSMs offer no SM4 or SM2 mechanism
through standard PKCS#11, so a ``gm`` deployment keeps the local keyring (:func:`require_profile`).
"""

from __future__ import annotations

import secrets as _random
import threading
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, PKCS11Error, UserAlreadyLoggedIn
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from crypto.errors import CryptoError, IntegrityError, UnknownKey
from crypto.signing import ED25519, ED25519_KEY_BYTES, key_id
from crypto.wrapped_key import join_wrapped, split_wrapped, wrap_aad

__all__ = ["INTERNATIONAL_ONLY", "Pkcs11KeyProvider", "Pkcs11Signer", "require_profile"]

INTERNATIONAL_ONLY = "international"
_KEK_LABEL = "data-sandbox/kek/"
_SIGNING_LABEL = "data-sandbox/signing"
_SECRETS_LABEL = "data-sandbox/secrets"
_SECRET_CONTEXT = b"data-sandbox/secret/v1\x00"
_NONCE_BYTES = 12
_ED25519_OID = "1.3.101.112"  # RFC 8410
_NEVER_LEAVES = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True}


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
        self.lock = threading.RLock()

    def __repr__(self) -> str:
        return "Pkcs11KeyProvider()"

    @classmethod
    def open(cls, library: str, *, token_label: str, pin: str) -> Pkcs11KeyProvider:
        """Log in to the token labelled ``token_label`` through the PKCS#11 module at ``library``."""
        try:
            token = pkcs11.lib(library).get_token(token_label=token_label)
            try:
                session = token.open(user_pin=pin, rw=True)
            except UserAlreadyLoggedIn:
                # PKCS#11 login is per process, not per session: another provider of this process
                # logged in already, and a new session shares that login (the PIN is not checked twice).
                session = token.open(rw=True)
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise CryptoError(
                f"cannot open PKCS#11 token {token_label!r} through {library}: {type(exc).__name__}"
            ) from exc
        return cls(session)

    def close(self) -> None:
        with self.lock:
            self._session.close()

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
            master = self._one_secret_key()
            return bytes(master.sign(_SECRET_CONTEXT + name.encode("utf-8"), mechanism=Mechanism.SHA256_HMAC))

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

    def ensure_signer(self) -> Pkcs11Signer:
        """The current signing key, creating an Ed25519 pair in the token if there is none."""
        with self.lock:
            found = self._current_signer()
            return found if found is not None else self._new_signer()

    def rotate_signer(self) -> Pkcs11Signer:
        """A new current signing key; older private keys may no longer sign (``CKA_SIGN`` off), their
        public keys stay published (:meth:`signing_publics`) so older receipts still verify."""
        with self.lock:
            old = list(self._session.get_objects(_private_template()))
            signer = self._new_signer()
            for key in old:
                key[Attribute.SIGN] = False
            return signer

    def signing_publics(self) -> list[bytes]:
        """Every signing public key the token holds (raw Ed25519), current or retired."""
        with self.lock:
            template = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: _SIGNING_LABEL}
            objects = list(self._session.get_objects(template))
            return [_public_point(bytes(o[Attribute.EC_POINT])) for o in objects]

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

    def _one_secret_key(self) -> Any:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: _SECRETS_LABEL}
        try:
            return self._session.get_key(**_get_key_args(template))
        except NoSuchKey:
            return self._session.generate_key(
                KeyType.GENERIC_SECRET,
                256,
                label=_SECRETS_LABEL,
                store=True,
                template={**_NEVER_LEAVES, Attribute.SIGN: True, Attribute.VERIFY: True},
            )

    def _current_signer(self) -> Pkcs11Signer | None:
        # Always list() a search: PKCS#11 allows one find operation per session at a time, so a search
        # left open (or a nested one) fails with CKR_OPERATION_ACTIVE.
        for private in list(self._session.get_objects(_private_template())):
            if private[Attribute.SIGN]:
                public = self._public_of(private)
                return Pkcs11Signer(self, private, public)
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

    def _new_signer(self) -> Pkcs11Signer:
        ident = _random.token_bytes(8)
        public, private = self._session.generate_keypair(
            KeyType.EC_EDWARDS,
            id=ident,
            label=_SIGNING_LABEL,
            store=True,
            public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(_ED25519_OID)},
            private_template={**_NEVER_LEAVES, Attribute.SIGN: True},
        )
        return Pkcs11Signer(self, private, _public_point(bytes(public[Attribute.EC_POINT])))


def _private_template() -> dict[Attribute, Any]:
    return {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: _SIGNING_LABEL}


def _get_key_args(template: dict[Attribute, Any]) -> dict[str, Any]:
    return {"object_class": template[Attribute.CLASS], "label": template[Attribute.LABEL]}


def _kid(key: Any) -> str:
    return bytes(key[Attribute.ID]).decode("ascii")


def _check_name(name: str, what: str) -> None:
    if not name or not name.isprintable():
        raise CryptoError(f"{what} must be a non-empty printable string")
