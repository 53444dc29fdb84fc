"""Answers about the audit log: events, pages, checkpoints, the head."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sandbox_api.schemas.base import _Out


class AuditEventOut(_Out):
    seq: int
    at: str
    event: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    format: str = Field(description="how the hash is computed: data-sandbox/audit-event/v2 (RFC 8785) or v1")


class AuditPage(_Out):
    events: list[AuditEventOut]
    next_since_seq: int | None = Field(description="pass as since_seq for the next page; null at the end")


class CheckpointOut(_Out):
    seq: int
    head_hash: str
    at: str
    kid: str
    signature: str
    type: str = Field(description="what is signed: data-sandbox/audit-checkpoint/v2 (RFC 8785) or v1")


class SigningKeyOut(_Out):
    kid: str
    public: str
    not_before: str
    not_after: str | None
    state: str


class AuditHeadOut(_Out):
    count: int
    last_seq: int | None
    hash: str
    at: str | None
    checkpoint: CheckpointOut | None = Field(description="the head, signed now (keep a copy elsewhere)")
    signing_keys: list[SigningKeyOut]
