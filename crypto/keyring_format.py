"""The keyring file's contents: the in-memory state and its JSON form, written and parsed.

The file holds, per domain, a list of KEKs (``kid``, ``key``, ``created_at``, ``state``, newest
``current``, older ``retired``), named 32-byte secrets, and Ed25519 signing keys (``kid``, ``private``,
``public``, ``not_before``, ``not_after``, ``state``). The JSON is written with sorted keys and a
two-space indent so that the same state always gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crypto.envelope import DATA_KEY_BYTES
from crypto.errors import KeyringError
from crypto.signing import ED25519, KEY_BYTES, SigningKeyRecord, key_id, public_key_of
from crypto.sm import SM4_KEY_BYTES

__all__ = [
    "CURRENT",
    "FILE_FORMAT",
    "FILE_VERSION",
    "RETIRED",
    "SECRET_BYTES",
    "Kek",
    "KeyringState",
    "Secret",
    "SigningEntry",
    "parse_state",
]

FILE_FORMAT = "data-sandbox-keyring"
FILE_VERSION = 1
SECRET_BYTES = 32
CURRENT = "current"
RETIRED = "retired"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Kek:
    """One key-encryption key of a domain, with its key material."""

    kid: str
    key: bytes = field(repr=False)
    created_at: str
    state: str


@dataclass(frozen=True)
class Secret:
    """One named secret, with its key material."""

    key: bytes = field(repr=False)
    created_at: str


@dataclass(frozen=True)
class SigningEntry:
    """One signing key (Ed25519, or SM2 under the ``gm`` profile), private half included, with the
    window it signs in."""

    kid: str
    private: bytes = field(repr=False)
    public: bytes
    not_before: datetime
    not_after: datetime | None
    state: str
    algorithm: str = ED25519

    def record(self) -> SigningKeyRecord:
        return SigningKeyRecord(
            kid=self.kid,
            public=self.public,
            not_before=self.not_before,
            not_after=self.not_after,
            state=self.state,
            algorithm=self.algorithm,
        )


@dataclass(frozen=True)
class KeyringState:
    """Everything the keyring file holds; immutable, so a change builds a new state."""

    domains: Mapping[str, tuple[Kek, ...]] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    signing: tuple[SigningEntry, ...] = ()

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
                    # Only non-Ed25519 keys name their algorithm: files written before stay byte-identical.
                    **({} if s.algorithm == ED25519 else {"algorithm": s.algorithm}),
                }
                for s in self.signing
            ],
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def parse_state(raw: bytes, path: Path) -> KeyringState:
    """Parse and validate the file; errors name the file and the problem, never a value."""

    def bad(what: str) -> KeyringError:
        return KeyringError(f"keyring file {path} is malformed: {what}; restore it from a backup")

    def key_bytes(entry: Mapping[str, object], name: str, size: int | tuple[int, ...], where: str) -> bytes:
        sizes = size if isinstance(size, tuple) else (size,)
        try:
            value = base64.b64decode(str(entry[name]), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise bad(f"{where}: field {name!r} is missing or not base64") from exc
        if len(value) not in sizes:
            raise bad(f"{where}: field {name!r} must be {' or '.join(map(str, sizes))} bytes")
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
        domains: dict[str, tuple[Kek, ...]] = {}
        for name, entries in dict(doc["domains"]).items():
            keks = tuple(
                Kek(
                    kid=str(e["kid"]),
                    # AES-256 KEKs (international) or SM4 KEKs (gm): crypto.profile.aead_for_key
                    key=key_bytes(e, "key", (DATA_KEY_BYTES, SM4_KEY_BYTES), f"domain {name!r}"),
                    created_at=str(e["created_at"]),
                    state=str(e["state"]),
                )
                for e in entries
            )
            if [k.state for k in keks].count(CURRENT) != 1 or keks[-1].state != CURRENT:
                raise bad(f"domain {name!r} must have exactly one current key-encryption key, the newest")
            domains[str(name)] = keks
        secret_map = {
            str(name): Secret(
                key=key_bytes(e, "key", SECRET_BYTES, f"secret {name!r}"), created_at=str(e["created_at"])
            )
            for name, e in dict(doc["secrets"]).items()
        }
        signing: list[SigningEntry] = []
        for e in doc["signing_keys"]:
            where = f"signing key {e.get('kid')!r}"
            algorithm = str(e.get("algorithm", ED25519))
            if algorithm not in KEY_BYTES:
                raise bad(f"{where}: unknown signature algorithm {algorithm!r}")
            private_bytes, public_bytes = KEY_BYTES[algorithm]
            private = key_bytes(e, "private", private_bytes, where)
            public = key_bytes(e, "public", public_bytes, where)
            if public_key_of(private, algorithm=algorithm) != public or key_id(public) != e["kid"]:
                raise bad(f"{where}: private key, public key and id do not belong together")
            signing.append(
                SigningEntry(
                    kid=str(e["kid"]),
                    private=private,
                    public=public,
                    not_before=datetime.fromisoformat(str(e["not_before"])),
                    not_after=None if e["not_after"] is None else datetime.fromisoformat(str(e["not_after"])),
                    state=str(e["state"]),
                    algorithm=algorithm,
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"unexpected structure ({type(exc).__name__})") from None
    return KeyringState(domains=domains, secrets=secret_map, signing=tuple(signing))
