"""Bearer tokens and roles.

A token is 32 random bytes (URL-safe base64, prefixed ``sbx_`` so leaked tokens are easy to grep for).
Only its SHA-256 is stored; the presented token is hashed and the stored hash compared in constant time.
With single sign-on on (``sso.py``), a bearer token may instead be a JWT from the configured issuer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sandbox_api.roles import Role

TOKEN_PREFIX = "sbx_"  # noqa: S105 - a public marker, not a secret
# Longest bearer token read: an ID token with many group claims runs to a few KiB; a service token is 47.
MAX_BEARER_CHARS = 8192


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    domain: str | None = None
    groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role.value,
            "domain": self.domain,
            "groups": list(self.groups),
        }


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hashes_match(stored_hash: str, presented_token: str) -> bool:
    return hmac.compare_digest(stored_hash.encode("ascii"), hash_token(presented_token).encode("ascii"))


def parse_bearer(header: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, or None when absent or malformed."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_BEARER_CHARS:
        return None
    return token
