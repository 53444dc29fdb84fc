"""Answers about datasets, their versions and validation reports, and scopes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sandbox_api.schemas.base import _Out


class ColumnOut(_Out):
    name: str
    type: str
    cls: str = Field(alias="class", serialization_alias="class")
    domain: dict[str, Any] | None = None
    nullable: bool = Field(default=True, description="false: the manifest declared that no value is missing")


class TableOut(_Out):
    name: str
    unit: str
    row_count: int | None = Field(
        default=None,
        description="rows in the table; null for operators (an exact total of everyone, subtracted from "
        "a released count, would say whether one person's cell is empty)",
    )
    columns: list[ColumnOut]
    level: str | None = Field(
        default=None,
        description="the classification level the manifest declared (docs/governance.md); null: the "
        "deployment's default level",
    )


class ValidationCheckOut(_Out):
    check: str = Field(description="columns | unit_not_null | unit_unique | nulls | domain")
    column: str | None
    passed: bool
    detail: str


class ValidationTableOut(_Out):
    name: str
    rows: int
    distinct_units: int
    checks: list[ValidationCheckOut]


class ValidationReportOut(_Out):
    format: str
    passed: bool
    tables: list[ValidationTableOut]


class VersionOut(_Out):
    version_id: str
    state: Literal["draft", "returned", "active", "retired", "shredded"] = Field(
        description="draft: uploaded, awaiting a second steward; returned: sent back for correction; "
        "active: published (the most recently published active version is current); retired; shredded"
    )
    created_at: str
    created_by: str
    tables: list[TableOut]
    validation: ValidationReportOut | None = Field(
        default=None,
        description="what was checked against the manifest at upload (stewards and admins only; null "
        "for operators and for versions stored before reports existed)",
    )
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    review_reason: str = Field(default="", description="the reviewer's note; for a returned version, why")
    published_at: str | None = None


class DatasetOut(_Out):
    domain: str
    name: str
    description: str
    created_at: str
    current_version: str | None
    versions: list[VersionOut]


class VersionStored(_Out):
    dataset: str
    created: bool = Field(description="false when identical content was already stored (idempotent upload)")
    version: VersionOut


class ScopeVersionOut(_Out):
    name: str
    version_id: str
    state: Literal["pending", "approved", "rejected", "revoked", "superseded"]
    author: str
    approvals: list[str]
    required_approvals: int
    reason: str
    created_at: str
    decided_at: str | None
    active: bool
    inactive_reason: str | None
    document: dict[str, Any]


class ScopeOut(_Out):
    name: str
    active_version: str | None
    versions: list[ScopeVersionOut]


class ScopeCreated(_Out):
    created: bool = Field(description="false when this exact version already existed")
    version: ScopeVersionOut
