"""Open data: proposals, decisions and the public catalog of published tables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sandbox_api.schemas.base import _In, _Out
from sandbox_api.schemas.evidence import ReceiptOut

# --- open data: released results published to a public catalog (services/open_data.py) -------------


class PublicationCreate(_In):
    job_id: str = Field(min_length=32, max_length=32, description="a released job of yours")
    title: str = Field(min_length=1, max_length=200, examples=["Influenza visits by district, 2026"])
    description: str = Field(
        default="", max_length=4000, description="what the table shows and how to read it, for the public"
    )


class PublicationDecision(_In):
    reason: str = Field(
        default="",
        max_length=2000,
        description="required to refuse or withdraw; shown to the proposer and recorded in the audit log",
    )


class PublicationOut(_Out):
    """A proposal and where it stands; what reviewers and the proposer see."""

    publication_id: str
    job_id: str
    title: str
    description: str
    state: Literal["proposed", "published", "refused", "withdrawn"]
    scope: str
    purpose: str
    proposed_by: str
    proposed_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    withdrawn_by: str | None = None
    withdrawn_at: str | None = None
    withdrawal_reason: str | None = None


class PublicationList(_Out):
    publications: list[PublicationOut]


class OpenDataEntry(_Out):
    """One published table as the public catalog lists it."""

    publication_id: str
    title: str
    description: str
    purpose: str = Field(description="the purpose of the scope the result was computed under")
    published_at: str
    row_count: int
    columns: list[str]


class OpenDataList(_Out):
    entries: list[OpenDataEntry]


class OpenDataOut(OpenDataEntry):
    """One published table in full, with the signed receipt that lets anyone check it offline."""

    job_id: str
    rows: list[list[Any]]
    column_types: list[str] | None = None
    output: dict[str, Any] | None = None
    result_hash: str
    receipt: ReceiptOut | None = Field(
        default=None,
        description="the gateway's signed receipt; verify with the public keys at GET /v1/keys/signing",
    )
