"""Request and response bodies of access applications and alerts on unusual use (docs/governance.md).

Apart from ``schemas.py`` so that neither module grows past a size one can read; the same conventions:
requests forbid unknown fields, responses are what the services' views hold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationCreate(_In):
    """An operator's application for access: which data, for what, which columns, for how long."""

    datasets: list[str] = Field(
        min_length=1, max_length=20, examples=[["health-bureau/citizens"]], description="`domain/dataset`"
    )
    purpose: str = Field(min_length=1, max_length=2000)
    columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description='the columns wanted, per dataset (`{"domain/dataset": [column, ...]}`)',
    )
    duration_days: int = Field(ge=1, le=3660, description="how long the access is needed")


class ApplicationDraft(_In):
    """The scope a policy officer drafts from an application (pending until a second officer approves)."""

    document: str = Field(max_length=200_000, description="the scope document (docs/design.md §4)")
    format: Literal["yaml", "json"] = "yaml"


class ApplicationRefusal(_In):
    reason: str = Field(min_length=1, max_length=2000, description="what the applicant can act on")


class ApplicationOut(BaseModel):
    id: str
    applicant: str
    datasets: list[str]
    purpose: str
    columns: dict[str, list[str]]
    duration_days: int
    state: str = Field(
        description="submitted, awaiting_approval (drafted), approved, refused, revoked or superseded"
    )
    reason: str = Field(description="why it was refused (or the approving officer's note)")
    scope_name: str | None
    scope_version: str | None
    drafted_by: str | None
    decided_by: str | None
    created_at: str
    updated_at: str


class AlertAcknowledge(_In):
    note: str = Field(min_length=1, max_length=2000, description="what was looked at, what was decided")


class AlertEvidence(BaseModel):
    """What the rule saw: every alert names it, so an auditor can check the alert."""

    jobs: list[str] = Field(description="job ids")
    events: list[int] = Field(description="audit event numbers (refusals and result reads)")
    figures: dict[str, float] = Field(description="what the rule counted, by name")


class AlertOut(BaseModel):
    id: str
    rule: str = Field(
        description="refusal_burst, near_identical_queries, ledger_hits, budget_burn, off_hours or "
        "download_volume"
    )
    operator: str
    scope: str
    message: str
    evidence: AlertEvidence
    state: Literal["open", "acknowledged"]
    suspended: bool = Field(description="whether the alert suspended the operator pending review")
    created_at: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    note: str
