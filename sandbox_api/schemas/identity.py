"""Answers about the service, principals, tokens and domains."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from sandbox_api.roles import Role
from sandbox_api.schemas.base import _Out


# --- responses -------------------------------------------------------------------------------------
class Health(_Out):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(_Out):
    """``GET /readyz``: every check passed (a failing one answers 503 with the reasons)."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class PrincipalOut(_Out):
    name: str
    role: Role
    domain: str | None
    groups: list[str]
    disabled: bool = False


class PrincipalCreated(_Out):
    principal: PrincipalOut
    token: str = Field(description="shown once; only its hash is stored")
    token_id: str = ""
    expires_at: datetime | None = None


class TokenCreated(_Out):
    principal: str
    token: str = Field(description="shown once; only its hash is stored")
    token_id: str = ""
    name: str = ""
    expires_at: datetime | None = None


class TokenOut(_Out):
    """A token as listed: its public id and dates, never the secret."""

    id: str
    principal: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class PrincipalStatus(_Out):
    principal: PrincipalOut
    jobs_cancelled: int = 0
    jobs_stopping: int = 0


class TokensRevoked(_Out):
    principal: str
    revoked: int


class DomainOut(_Out):
    name: str
    description: str
    kek_id: str


class KeyRotated(_Out):
    domain: str
    kek_id: str
    rewrapped_versions: int
