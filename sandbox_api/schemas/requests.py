"""Request bodies: domains, principals, tokens, datasets, scopes, decisions, jobs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sandbox_api.job_types import Kind, Mode
from sandbox_api.roles import Role
from sandbox_api.schemas.base import _NAME, _In


# --- requests --------------------------------------------------------------------------------------
class DomainCreate(_In):
    name: str = Field(examples=["health-bureau"], json_schema_extra=_NAME)
    description: str = Field(default="", max_length=2000)


class PrincipalCreate(_In):
    name: str = Field(examples=["alice"], json_schema_extra=_NAME)
    role: Role
    domain: str | None = Field(
        default=None,
        description=(
            "required for stewards and domain administrators, optional for operators (the domain whose "
            "administrators manage them), forbidden otherwise"
        ),
    )
    groups: list[Annotated[str, Field(json_schema_extra=_NAME)]] = Field(default_factory=list, max_length=64)


class TokenCreate(_In):
    name: str = Field(default="", max_length=63, description="a label, e.g. the machine that holds it")
    expires_in_days: int | None = Field(
        default=None, ge=1, description="lifetime; unset: the deployment's `token_ttl_days`"
    )


class DatasetCreate(_In):
    domain: str
    name: str = Field(examples=["citizens"], json_schema_extra=_NAME)
    description: str = Field(default="", max_length=2000)


class ScopeCreate(_In):
    document: str = Field(max_length=200_000, description="the scope document (docs/design.md §4)")
    format: Literal["yaml", "json"] = "yaml"


class Decision(_In):
    reason: str = Field(default="", max_length=2000)


class JobRequest(_In):
    """A SQL job (``sql``) or a Python job (``kind: python`` with ``code``), on the real data or on the
    datasets' mock twins (``mode: mock``): moving from mock to real changes only ``mode``. A
    ``kind: cross-domain`` job is SQL joining two domains' datasets, run as a private join (real
    data only)."""

    scope: str = Field(examples=["flu-study-2026"])
    kind: Kind = Kind.SQL
    mode: Mode = Field(
        default=Mode.REAL, description="mock: run on synthetic twins, row-level output allowed, nothing spent"
    )
    sql: str | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        examples=["SELECT district, COUNT(*) FROM citizens GROUP BY district"],
    )
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="the Python job (kind: python); assign the answer to `result`",
        examples=["result = aggregate(citizens, by='district', aggs={'n': ('income', 'count')})"],
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if self.kind == "sql" and (self.sql is None or self.code is not None):
            raise ValueError("a SQL job needs `sql` and no `code`")
        if self.kind == "python" and (self.code is None or self.sql is not None):
            raise ValueError("a Python job (kind: python) needs `code` and no `sql`")
        if self.kind == "cross-domain" and (self.sql is None or self.code is not None):
            raise ValueError("a cross-domain job needs `sql` and no `code`")
        if self.kind == "cross-domain" and self.mode == "mock":
            raise ValueError(
                "a cross-domain job runs on real data only; on mock twins, submit the same SQL as kind sql"
            )
        return self
