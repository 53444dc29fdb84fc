"""Answers about jobs: problems and findings, the dry run, the DP budget, job views, results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox_api.job_types import Kind, Mode
from sandbox_api.schemas.base import _Out
from sandbox_api.schemas.evidence import ReceiptOut
from sandbox_api.schemas.review import DecisionOut


class FindingOut(_Out):
    rule: str
    message: str
    fragment: str = ""


class ProblemOut(_Out):
    """An error, as ``application/problem+json`` (RFC 9457): ``code`` is stable and is what a program
    should branch on; ``detail`` says what went wrong and what to do; ``findings`` lists every reason.
    Routes add members (``job_id`` and ``state`` of a stored, rejected job; ``retry_after`` seconds beside
    the ``Retry-After`` header); unknown members may appear and should be ignored."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:sandbox:<code>", examples=["urn:sandbox:not-found"])
    title: str = Field(description="the HTTP status in words")
    status: int = Field(description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong and what to do, for a person")
    code: str = Field(description="stable, for programs (see docs/api.md)", examples=["not-found"])
    findings: list[FindingOut] = Field(description="every reason, not the first")
    job_id: str | None = Field(default=None, description="job-rejected: the stored, rejected job")
    state: str | None = Field(default=None, description="job-rejected: the job's state (rejected)")
    retry_after: int | None = Field(
        default=None, description="queue-full, quota-exceeded: seconds to wait (also the Retry-After header)"
    )


class CheckOut(_Out):
    allowed: bool
    findings: list[FindingOut]
    rewritten_sql: str | None = Field(
        description="the rewritten SQL; for Python and mock jobs, the SELECTs that build the job's tables"
    )
    applied: list[str]
    kind: Kind = Field(
        default=Kind.SQL,
        description="the kind the job would run as: a SQL job that reads datasets of two domains runs as "
        "cross-domain (a private join), or is refused",
    )
    mode: Mode = Mode.REAL
    dp: dict[str, Any] | None = Field(
        default=None,
        description="differential privacy: the epsilon (and delta) the job would spend, the mechanism, per "
        "noised column its noise scale and 95% interval half-width, and the clamped inputs",
    )
    budget_left: dict[str, float] | None = Field(
        default=None, description="differential privacy: the epsilon and delta you have left in this scope"
    )


class DpBudgetOut(_Out):
    """What a job spent of its owner's differential-privacy budget, and what the owner has left.

    Ledger arithmetic only: charges follow from the scope's settings and the query's shape, never from
    the data, so these figures tell nothing about any person (the dry run shows the same ones)."""

    scope: str = Field(description="the scope lineage the job spent from")
    period: int = Field(
        description="the refresh period of the ledger entry (0: a budget that never refreshes)"
    )
    spent: dict[str, float] = Field(
        description="epsilon and delta this job spent (0 once refunded: the job failed or was cancelled)"
    )
    refunded: bool = Field(description="whether the charge was given back")
    limit: dict[str, float] = Field(description="epsilon and delta of the owner's budget in this entry")
    left: dict[str, float] = Field(
        description="epsilon and delta the owner has left in this entry now (after this job and any since)"
    )


class JobAccepted(_Out):
    job_id: str
    state: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    dp_budget: DpBudgetOut | None = Field(
        default=None, description="differential privacy: what this job spent and what you have left after it"
    )


class JobReviewOut(_Out):
    """The output review of a withheld job, as its record stands."""

    model_config = ConfigDict(extra="allow")

    required: int = Field(description="distinct output checkers who must release it")
    decisions: list[DecisionOut]
    flags: int | None = Field(
        default=None,
        description="flags the disclosure report raised; absent for the job's operator (the report is "
        "the output checkers', and how many flags it raised can depend on one person)",
    )


class JobOut(_Out):
    job_id: str
    owner: str
    scope: str
    scope_version: str
    state: str
    reason: str
    findings: list[FindingOut]
    sql: str
    rewritten_sql: str | None
    applied: list[str]
    dataset_versions: dict[str, str]
    attempts: int
    timings: dict[str, float] = Field(
        description="seconds per phase; empty for operators (how long a phase took can depend on data "
        "they may not see); admins and auditors see it"
    )
    result_hash: str | None
    created_at: str
    updated_at: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    code: str | None = Field(default=None, description="a Python job's code")
    review: JobReviewOut | None = Field(default=None, description="output review of a withheld job")
    dp_budget: DpBudgetOut | None = Field(
        default=None,
        description="differential privacy: what this job spent and what its owner has left in the scope "
        "(in the submit answer and reads of one job; not in listings)",
    )


class JobList(_Out):
    jobs: list[JobOut]


class CancelOut(_Out):
    job: JobOut
    stopping: bool = Field(description="true when the job was running and its sandbox is being stopped")


class ReleaseReportOut(BaseModel):
    """The report released with a result (``services/release_report.ReleaseReport``), as a client
    reads it: ``rows_released`` and ``reasons`` always, the rest where the release path reports it.
    Unknown members are kept: the receipt signs the report as the gateway wrote it."""

    model_config = ConfigDict(extra="allow")

    rows_released: int
    reasons: list[str]
    rows_in: int | None = None
    cells_rounded: int | None = None
    rows_capped: int | None = None
    min_units: int | None = None
    mock: bool | None = None
    remainder: bool | None = None
    reviewed_by: list[str] | None = None


class ResultOut(_Out):
    job_id: str
    scope: str
    scope_version: str
    dataset_versions: dict[str, str]
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    result_hash: str
    report: ReleaseReportOut = Field(
        description="the suppression report: what was dropped, merged, rounded, why"
    )
    kind: Kind = Kind.SQL
    mode: Mode = Field(default=Mode.REAL, description="mock: computed on synthetic twins")
    output: dict[str, Any] | None = Field(
        default=None,
        description="a Python job's released object (`summary`, plain data), `printed` output and the "
        "disclosure `report` the checker saw",
    )
    receipt: ReceiptOut | None = Field(
        default=None,
        description="the signed receipt (also at GET /v1/jobs/{id}/receipt); verify it offline with "
        "`sandbox receipt verify`",
    )
    column_types: list[Literal["integer", "float", "boolean", "date", "timestamp", "string"]] | None = Field(
        default=None,
        description="each column's type, in order (dates are `YYYY-MM-DD`, timestamps ISO 8601); absent "
        "for results released before types were recorded",
    )
