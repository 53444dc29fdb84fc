"""What a job and its result look like to a reader: the views every job read answers with.

``visible_row`` is the one visibility rule for reading a job by id (another operator's job answers
like a missing one), and ``for_reader`` the one rule for what a reader may see of a job it can read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from sandbox_api.clock import iso
from sandbox_api.errors import NotFound
from sandbox_api.job_types import Kind, Mode
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.store.models import JobRow


@dataclass(frozen=True)
class JobView:
    job_id: str
    owner: str
    scope: str
    scope_version: str
    state: str
    reason: str
    findings: list[dict[str, Any]]
    sql: str
    rewritten_sql: str | None
    applied: list[str]
    dataset_versions: dict[str, str]
    attempts: int
    timings: dict[str, float]
    result_hash: str | None
    created_at: str
    updated_at: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    code: str | None = None  # a Python job's code
    review: dict[str, Any] | None = None  # output review of a withheld job (services/review.py)
    # Differential privacy: what the job spent and what its owner has left in the scope lineage
    # (``services/dp_budget.JobBudget.to_dict``); filled in by the submit answer and reads by id.
    dp_budget: dict[str, Any] | None = None


@dataclass(frozen=True)
class CommittedJob:
    """A job as the transaction that settled it committed: what a long-poll is handed
    (``services/job_signals.py``), so that it need not read the job again.

    ``charged``: the job may hold a DP budget charge, which the view does not carry (the waiter reads
    it); False for a job never charged, whose view is then complete as it is.
    """

    view: JobView
    charged: bool


@dataclass(frozen=True)
class ResultView:
    job_id: str
    scope: str
    scope_version: str
    dataset_versions: dict[str, str]
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    result_hash: str
    report: dict[str, Any]
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    output: dict[str, Any] | None = None  # a released Python object and/or printed output
    receipt: dict[str, Any] | None = None  # the signed receipt (services/receipts.py)
    # integer | float | boolean | date | timestamp | string per column (services/result_json.py);
    # None for a result stored before types were recorded.
    column_types: list[str] | None = None


def never_charged(row: JobRow) -> bool:
    """A job is charged at submission only if its stored release facts carry a DP plan
    (``services/job_submission.py``): without one, there is no charge to look up (a query saved on
    every read of the job). Jobs stored before release facts were recorded are looked up."""
    return bool(row.release_facts) and ReleaseFacts.from_json(row.release_facts).dp_plan is None


def job_view(row: JobRow) -> JobView:
    return JobView(
        job_id=row.id,
        owner=row.owner,
        scope=row.scope,
        scope_version=row.scope_version,
        state=row.state,
        reason=row.reason,
        findings=list(row.findings),
        sql=row.sql,
        rewritten_sql=row.rewritten_sql,
        applied=list(row.applied),
        dataset_versions=dict(row.dataset_versions),
        attempts=row.attempts,
        timings=dict(row.timings),
        result_hash=row.result_hash,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
        kind=Kind(row.kind or Kind.SQL),
        mode=Mode(row.mode or Mode.REAL),
        code=row.code,
        review=None if row.review is None else dict(row.review),
    )


def for_reader(view: JobView, who: Principal) -> JobView:
    """``view`` as ``who`` may read it: operators never see per-phase timings, nor how many flags the
    disclosure report of their withheld job raised.

    How long a job spent in each phase can depend on data the operator may not see (a self-join that
    is empty or not, depending on one person's diagnosis, takes 0.4 s or 2 s), so timings are for
    admins and auditors only. The flags are the report's, which is for the output checkers: a Python
    job that counts "the women of Tiny born in Y" by sex raised 2 flags for her true year and 0 for
    another, so their number, read before any checker looked, was her birth year.
    """
    if who.role is not Role.OPERATOR:
        return view
    if view.timings:
        view = replace(view, timings={})
    if view.review is not None and "flags" in view.review:
        view = replace(view, review={k: v for k, v in view.review.items() if k != "flags"})
    return view


def visible_row(session: Session, who: Principal, job_id: str, *, for_update: bool = False) -> JobRow:
    """The job ``job_id`` if ``who`` may read it, else NotFound.

    ``for_update``: lock the row (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already
    excludes other writers) so that a cancel and a settlement on two gateways serialise."""
    row = session.get(JobRow, job_id, with_for_update=for_update)
    # Another operator's job answers like a missing one: ids must not be probeable.
    if row is None or (who.role is Role.OPERATOR and row.owner != who.name):
        raise NotFound(f"job {job_id} does not exist")
    return row
