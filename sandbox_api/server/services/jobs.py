"""Jobs: dry run, submission, the one state-transition function, results, cancellation, recovery.

``JobService.advance`` is the only code that changes a job's state, and it appends the audit event in
the same transaction, so the log and the job table can never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crypto.envelope import unseal
from policies.dp.cost import cost_of
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import (
    Conflict,
    Forbidden,
    JobNotReady,
    JobRejected,
    NotFound,
    QueueFull,
    QuotaExceeded,
    ScopeNotActive,
)
from sandbox_api.job_types import Kind, Mode
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.catalog import CatalogService
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.services.dp_budget import DpBudgetService
from sandbox_api.server.services.job_kinds import Checked, JobCheck, JobText, kind_of
from sandbox_api.server.services.job_signals import JobSignals
from sandbox_api.server.services.job_states import TERMINAL, JobState, require_transition
from sandbox_api.server.services.policy_catalog import PolicyContexts, scope_catalog_versions
from sandbox_api.server.services.quotas import (
    DAY,
    HOUR,
    LongPolls,
    PrincipalUsage,
    QuotaLimits,
    check_submission,
)
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.release import ReleaseFn, release
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.services.scopes import ActiveScope, ScopeService
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import JobRow, ResultRow

# Seconds a client is asked to wait before retrying a submission refused because the queue is full.
RETRY_AFTER_S = 5

# States in which a waiting client stops waiting: final ones, and withheld (only a person moves it on).
SETTLED: frozenset[JobState] = TERMINAL | {JobState.WITHHELD}
#: Ends without a release: a differential-privacy charge taken at submit is given back.
_REFUNDED = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})

# How often a long-poll re-reads its job even without a signal: a change committed by another process
# (a second gateway on the same database, a recovery run) wakes no waiter of this one. The pause grows
# from the first to the last value: this process's own changes arrive as signals, and a few hundred
# open waits must not keep the database busy.
WAIT_RECHECK_S = 0.25
WAIT_RECHECK_MAX_S = 2.0


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
    """``view`` as ``who`` may read it: operators never see per-phase timings.

    How long a job spent in each phase can depend on data the operator may not see (a self-join that
    is empty or not, depending on one person's diagnosis, takes 0.4 s or 2 s), so timings are for
    admins and auditors only.
    """
    if who.role is Role.OPERATOR and view.timings:
        return replace(view, timings={})
    return view


@dataclass(frozen=True)
class JobService:
    db: Database
    audit: AuditLog
    clock: Clock
    catalog: CatalogService
    scopes: ScopeService
    results_key: bytes
    queue_limit: int
    wake: threading.Event
    # Per-principal quotas and the fair claim order (services/quotas.py).
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    # Long-polls open per principal (each holds a request): counted here, capped by ``quotas``.
    long_polls: LongPolls = field(default_factory=LongPolls)
    # Signs a receipt inside every release transaction (None only in tests of the layers below).
    receipts: ReceiptService | None = None
    # The one release function every settlement goes through (services/release.py); a test build of
    # the services passes a wrapper that counts what went through it.
    release: ReleaseFn = release
    # The released-cohort ledger every SQL release of a scope without differential privacy is checked
    # against (services/cohort_ledger.py); None only in tests of the layers below.
    ledger: CohortLedger | None = None
    contexts: PolicyContexts = field(default_factory=PolicyContexts)
    # The differential-privacy budget (services/dp_budget.py): charged at submit for real SQL jobs
    # under a DP scope, refunded when such a job fails, is cancelled or rejected. None: no DP scopes.
    budget: DpBudgetService | None = None
    # Wakes long-polls once a transition has committed (``advance`` marks the job on the session).
    signals: JobSignals[JobView] = field(default_factory=JobSignals)

    # --- the one transition function ---------------------------------------------------------
    def advance(
        self,
        session: Session,
        row: JobRow,
        to: JobState,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, object] | None = None,
    ) -> bool:
        """Move ``row`` to ``to`` and log it in the caller's transaction; False if it already was there.

        Clients waiting on the job are woken once that transaction commits (never before) if ``to`` is
        a state their wait ends in.
        """
        current = JobState(row.state)
        if current is to:
            return False
        require_transition(row.id, current, to)
        row.state, row.reason, row.updated_at = to.value, reason, self.clock.now()
        event = "job.requeued" if (current, to) == (JobState.RUNNING, JobState.QUEUED) else f"job.{to.value}"
        self.audit.append(
            session,
            event=event,
            actor=actor,
            details={"job": row.id, "from": current.value, "reason": reason, **(details or {})},
        )
        if self.budget is not None and to in _REFUNDED:
            # In the transition's own transaction: the budget comes back exactly when the job ends
            # without a release (nothing to refund for a job that was never charged).
            self.budget.refund_in(session, job_id=row.id, reason=f"job {to.value}: {reason}", actor=actor)
        if to in SETTLED:
            # Only the states a waiting client stops at: a wake-up for any other would make the waiter
            # re-read the job (in the middle of the runner's work) and wait again.
            self.signals.notify_after_commit(session, row.id, lambda: job_view(row))
        return True

    # --- operators ---------------------------------------------------------------------------
    def dry_run(
        self,
        who: Principal,
        *,
        scope: str,
        sql: str | None = None,
        kind: Kind = Kind.SQL,
        mode: Mode = Mode.REAL,
        code: str | None = None,
    ) -> JobCheck:
        """What submitting would do, for any kind of job; nothing runs and nothing is stored (under a
        DP scope: the cost preview and the caller's budget left, from the ledger, never from data)."""
        active = self._granted_scope(who, scope, action="job.check")
        report = self._checked(JobText(scope, kind, mode, sql, code), active).report
        if report.dp is None or self.budget is None:
            return report
        left = self.budget.left(scope=active.scope, grantee=who.name).left
        return replace(report, budget_left=left)

    def submit(
        self,
        who: Principal,
        *,
        scope: str,
        sql: str | None = None,
        kind: Kind = Kind.SQL,
        mode: Mode = Mode.REAL,
        code: str | None = None,
    ) -> JobView:
        """Persist the job before answering: queued, or rejected with every finding (raises JobRejected).

        One path for every kind of job: the scope grant (refusals audited), the kind's check
        (``services/job_kinds.py``), then one transaction for the row, ``job.submitted`` and the first
        transition.
        """
        text = JobText(scope, kind, mode, sql, code)
        active = self._granted_scope(who, scope, action="job.submit")
        return self._persist(who, scope=scope, active=active, checked=self._checked(text, active))

    def _check(self, who: Principal, text: JobText, *, action: str) -> Checked:
        return self._checked(text, self._granted_scope(who, text.scope, action=action))

    def _checked(self, text: JobText, active: ActiveScope) -> Checked:
        versions = self.catalog.current_versions()
        checked = kind_of(text.kind, text.mode).check(
            text, active=active, versions=versions, contexts=self.contexts
        )
        # The catalog the job was checked against, every dataset of the scope (read or not), so that a
        # replay rebuilds exactly that context (docs/auditing.md).
        current = {ref: v.version_id for ref, v in versions.items()}
        pinned = {**current, **dict(checked.fields.get("dataset_versions") or {})}
        catalog = scope_catalog_versions(active.scope, pinned)
        return replace(checked, fields={**checked.fields, "catalog_versions": catalog})

    def _persist(self, who: Principal, *, scope: str, active: ActiveScope, checked: Checked) -> JobView:
        """Store a submission and its first transition in one transaction, then answer.

        ``checked.queued`` is None for a job the policy refused: it is stored as rejected and
        ``JobRejected`` is raised with every finding.
        """
        queued = checked.queued
        job_id = secrets.token_hex(16)
        now = self.clock.now()
        if queued is not None:
            # Read first, outside the write transaction (a refusal is audited in its own): two submissions
            # racing past the same last free place can overshoot a quota by one, never the queue limit.
            with self.db.read() as reading:
                refusal = check_submission(self._usage(reading, who.name), self.quotas, now=now)
            if refusal is not None:
                self._deny(who, action="job.submit", scope=scope, reason=f"quota {refusal.limit}")
                raise QuotaExceeded(
                    f"quota {refusal.limit}: {refusal.message}",
                    extra={"retry_after": refusal.retry_after_s},
                )
        plan = ReleaseFacts.from_json(checked.fields.get("release_facts")).dp_plan
        dp = active.scope.disclosure.dp
        charged = False
        if queued is not None and plan is not None and dp is not None and self.budget is not None:
            # Before the job is stored as queued (BudgetExhausted: 409, nothing stored).
            self.budget.charge(
                job_id=job_id, scope=active.scope, grantee=who.name, cost=cost_of(plan, dp), actor=who.name
            )
            charged = True
        try:
            return self._store(who, scope=scope, active=active, checked=checked, job_id=job_id, now=now)
        except Exception:
            if charged:
                assert self.budget is not None
                self.budget.refund(job_id=job_id, reason="the job could not be queued")
            raise

    def _store(
        self, who: Principal, *, scope: str, active: ActiveScope, checked: Checked, job_id: str, now: datetime
    ) -> JobView:
        findings, queued, rejected = checked.findings, checked.queued, checked.rejected
        with self.db.write() as session:
            if queued is not None:
                waiting = session.execute(
                    select(func.count()).select_from(JobRow).where(JobRow.state == JobState.QUEUED.value)
                ).scalar_one()
                if waiting >= self.queue_limit:
                    raise QueueFull(
                        f"{waiting} jobs are waiting, the limit is {self.queue_limit}; "
                        "retry in a few seconds",
                        extra={"retry_after": RETRY_AFTER_S},
                    )
            row = JobRow(
                id=job_id,
                owner=who.name,
                scope=scope,
                scope_version=active.version_id,
                state=JobState.SUBMITTED.value,
                reason="submitted",
                findings=findings,
                attempts=0,
                cancel_requested=False,
                timings={},
                created_at=now,
                updated_at=now,
                **checked.fields,
            )
            session.add(row)
            session.flush()
            self.audit.append(
                session,
                event="job.submitted",
                actor=who.name,
                details={
                    "job": job_id,
                    "scope": scope,
                    "scope_version": active.version_id,
                    **checked.submitted,
                },
            )
            if queued is None:
                self.advance(
                    session,
                    row,
                    JobState.REJECTED,
                    actor=who.name,
                    reason=rejected.reason,
                    details={"findings": [f["rule"] for f in findings], **rejected.details},
                )
            else:
                self.advance(
                    session,
                    row,
                    JobState.QUEUED,
                    actor=who.name,
                    reason=queued.reason,
                    details={**queued.details, "dataset_versions": dict(row.dataset_versions)},
                )
            view = job_view(row)
        if queued is None:
            raise JobRejected(
                f"job {job_id} was rejected: {checked.broken} {len(findings)} rule(s) of scope {scope!r}",
                findings=findings,
                extra={"job_id": job_id, "state": JobState.REJECTED.value},
            )
        self.wake.set()
        return view

    def get(self, who: Principal, job_id: str) -> JobView:
        with self.db.read() as session:
            return for_reader(job_view(self._visible_row(session, who, job_id)), who)

    async def wait(self, who: Principal, job_id: str, *, wait_s: float) -> JobView:
        """The job as soon as it is settled (final or withheld), else as it is after ``wait_s`` seconds.

        A long-poll: ``signals`` hands over the job as committed by a settling transition; without a
        signal the database is re-read, every ``WAIT_RECHECK_S`` at first, then less often. Each read
        is short and runs in a worker thread: no session stays open and no thread is held while waiting.
        Visibility is ``get``'s (another operator's job: NotFound at once).
        """
        if wait_s <= 0:
            return await asyncio.to_thread(self.get, who, job_id)
        with self.long_polls.held(who.name, self.quotas):
            return await self._wait(who, job_id, wait_s=wait_s)

    async def _wait(self, who: Principal, job_id: str, *, wait_s: float) -> JobView:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        arrivals: asyncio.Queue[JobView | None] = asyncio.Queue()

        def wake(committed: JobView | None) -> None:  # runs in the committing thread
            loop.call_soon_threadsafe(arrivals.put_nowait, committed)

        # Subscribed before the first read: a job that settles during it is not missed.
        with self.signals.subscribe(job_id, wake):
            view = await asyncio.to_thread(self.get, who, job_id)
            pause = WAIT_RECHECK_S
            while JobState(view.state) not in SETTLED and (remaining := deadline - loop.time()) > 0:
                committed = None
                with contextlib.suppress(TimeoutError):
                    committed = await asyncio.wait_for(arrivals.get(), min(remaining, pause))
                view = (
                    for_reader(committed, who)
                    if committed is not None
                    else await asyncio.to_thread(self.get, who, job_id)
                )
                pause = min(pause * 2, WAIT_RECHECK_MAX_S)
            return view

    def list_jobs(
        self, who: Principal, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobView]:
        with self.db.read() as session:
            query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
            if who.role is Role.OPERATOR:
                query = query.where(JobRow.owner == who.name)
            if state is not None:
                query = query.where(JobRow.state == state)
            return [for_reader(job_view(row), who) for row in session.execute(query).scalars()]

    def result(self, who: Principal, job_id: str) -> ResultView:
        with self.db.read() as session:
            row = self._visible_row(session, who, job_id)
            if row.state != JobState.RELEASED.value:
                raise JobNotReady(
                    f"job {job_id} is {row.state}; a result exists only once it is released"
                    + ("" if row.state not in TERMINAL else f" ({row.reason})")
                )
            stored = session.get(ResultRow, job_id)
            if stored is None:
                raise NotFound(f"job {job_id} has no stored result")
            payload = json.loads(unseal(self.results_key, stored.sealed, aad=job_id.encode()))
            view = ResultView(
                job_id=job_id,
                scope=row.scope,
                scope_version=row.scope_version,
                dataset_versions=dict(row.dataset_versions),
                columns=list(payload["columns"]),
                rows=list(payload["rows"]),
                row_count=stored.row_count,
                result_hash=stored.result_hash,
                report=dict(stored.report),
                kind=Kind(row.kind or Kind.SQL),
                mode=Mode(row.mode or Mode.REAL),
                output=payload.get("output"),
                column_types=payload.get("types"),
                receipt=None if self.receipts is None else self.receipts.load(session, job_id),
            )
        self.audit.record(event="job.result.read", actor=who.name, details={"job": job_id})
        return view

    def cancel(self, who: Principal, job_id: str) -> tuple[JobView, bool]:
        """Cancel a queued job at once; ask the runner to stop a running one (second value: running)."""
        with self.db.write() as session:
            row = self._visible_row(session, who, job_id, for_update=True)
            state = JobState(row.state)
            if state in {JobState.QUEUED, JobState.SUBMITTED, JobState.WITHHELD}:
                self.advance(
                    session, row, JobState.CANCELLED, actor=who.name, reason=f"cancelled by {who.name}"
                )
                return for_reader(job_view(row), who), False
            if state is JobState.RUNNING:
                if not row.cancel_requested:
                    row.cancel_requested = True
                    self.audit.append(
                        session, event="job.cancel.requested", actor=who.name, details={"job": job_id}
                    )
                return for_reader(job_view(row), who), True
            if state is JobState.CANCELLED:
                return for_reader(job_view(row), who), False
            raise Conflict(f"job {job_id} is {state.value}; only queued or running jobs can be cancelled")

    def settle_for_disabled(self, session: Session, *, owner: str, actor: str) -> DisabledOwnerJobs:
        """The jobs of a principal being disabled, in the caller's transaction.

        Queued (and submitted) jobs are cancelled: nobody should spend the cluster, or a DP budget
        (refunded by ``advance``), on work its owner may no longer collect. Running jobs are asked to
        stop, as an operator's own cancel would (the caller tells the runner once this commits). Withheld
        jobs stay with the output checkers: their
        decision is still owed and is audited, and the owner cannot read a release while disabled.
        """
        cancelled: list[str] = []
        running: list[str] = []
        rows = session.execute(
            select(JobRow)
            .where(
                JobRow.owner == owner,
                JobRow.state.in_([JobState.QUEUED.value, JobState.SUBMITTED.value, JobState.RUNNING.value]),
            )
            .with_for_update()
        ).scalars()
        reason = f"owner {owner} was disabled by {actor}"
        for row in rows:
            if JobState(row.state) is JobState.RUNNING:
                if not row.cancel_requested:
                    row.cancel_requested = True
                    self.audit.append(
                        session,
                        event="job.cancel.requested",
                        actor=actor,
                        details={"job": row.id, "reason": reason},
                    )
                running.append(row.id)
            elif self.advance(session, row, JobState.CANCELLED, actor=actor, reason=reason):
                cancelled.append(row.id)
        return DisabledOwnerJobs(cancelled=tuple(cancelled), stopping=tuple(running))

    # --- helpers -----------------------------------------------------------------------------
    def _granted_scope(self, who: Principal, scope: str, *, action: str) -> ActiveScope:
        try:
            active = self.scopes.active(scope)
        except ScopeNotActive as exc:
            self._deny(who, action=action, scope=scope, reason=exc.detail)
            raise
        if not active.scope.is_grantee(who.name, who.groups):
            reason = f"{who.name} is not a grantee of scope {scope!r}"
            self._deny(who, action=action, scope=scope, reason=reason)
            raise Forbidden(reason + "; ask a policy officer to add you or your group")
        return active

    def _deny(self, who: Principal, *, action: str, scope: str, reason: str) -> None:
        self.audit.record(
            event="request.denied",
            actor=who.name,
            details={"action": action, "scope": scope, "reason": reason},
        )

    @staticmethod
    def _visible_row(session: Session, who: Principal, job_id: str, *, for_update: bool = False) -> JobRow:
        """``for_update``: lock the row (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already
        excludes other writers) so that a cancel and a settlement on two gateways serialise."""
        row = session.get(JobRow, job_id, with_for_update=for_update)
        # Another operator's job answers like a missing one: ids must not be probeable.
        if row is None or (who.role is Role.OPERATOR and row.owner != who.name):
            raise NotFound(f"job {job_id} does not exist")
        return row

    def _usage(self, session: Session, owner: str) -> PrincipalUsage:
        """``owner``'s queued jobs, submissions of the last hour and CPU seconds of the last day."""
        now = self.clock.now()
        queued = session.execute(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.owner == owner, JobRow.state == JobState.QUEUED.value)
        ).scalar_one()
        submitted = session.execute(
            select(JobRow.created_at).where(
                JobRow.owner == owner,
                JobRow.created_at > now - HOUR,
                JobRow.state != JobState.REJECTED.value,
            )
        ).scalars()
        finished = session.execute(
            select(JobRow.updated_at, JobRow.timings).where(
                JobRow.owner == owner,
                JobRow.updated_at > now - DAY,
                JobRow.state.in_([s.value for s in TERMINAL | {JobState.WITHHELD}]),
            )
        ).all()
        return PrincipalUsage(
            queued=int(queued),
            submitted=[_aware(t) for t in submitted],
            cpu=[(_aware(t), float((timings or {}).get("cpu", 0.0))) for t, timings in finished],
        )

    def queued_count(self) -> int:
        with self.db.read() as session:
            return int(
                session.execute(
                    select(func.count()).select_from(JobRow).where(JobRow.state == JobState.QUEUED.value)
                ).scalar_one()
            )


@dataclass(frozen=True)
class DisabledOwnerJobs:
    """What disabling a principal did to its jobs: ids cancelled at once, and running ids told to stop."""

    cancelled: tuple[str, ...]
    stopping: tuple[str, ...]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for aware columns: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
