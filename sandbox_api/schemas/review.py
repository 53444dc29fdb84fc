"""Output review: a checker's decision and the withheld job they decide on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox_api.job_types import Kind, Mode

# --- output review -----------------------------------------------------------------------------------


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        default="", max_length=2000, description="required to deny; recorded in the audit log"
    )


class DecisionOut(BaseModel):
    checker: str
    decision: Literal["release", "deny"]
    reason: str
    at: str


class ReviewOut(BaseModel):
    job_id: str
    owner: str
    scope: str
    scope_version: str
    kind: Kind
    mode: Mode
    state: str
    reason: str
    code: str | None
    sql: str
    required_checkers: int = Field(description="distinct checkers who must release it")
    decisions: list[DecisionOut]
    report: dict[str, Any] = Field(
        description="automatic disclosure report: {flagged, findings: [{rule, severity, message, where}]}"
    )
    created_at: str
    withheld_at: str
    output: dict[str, Any] | None = Field(
        default=None,
        description="only when reading one review: the withheld `table` ({columns, rows}), object `summary` "
        "(plain data) and `printed` output",
    )


class ReviewList(BaseModel):
    reviews: list[ReviewOut]
