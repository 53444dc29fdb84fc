"""Submitting a job: the dry run and the submission, one path for every kind of job.

The scope grant (refusals audited once), the kind's check (``services/job_kinds.py``), the quotas and
the queue limit, the differential-privacy charge, then one transaction for the row, ``job.submitted``
and the first transition (``advance``: queued, or rejected with every finding).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from policies.dp.budget import charge_of
from policies.dp.cost import cost_of
from sandbox_api.errors import Forbidden, JobRejected, QueueFull, QuotaExceeded, ScopeNotActive
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.dp_budget import JobBudget
from sandbox_api.server.services.job_kinds import Checked, JobCheck, JobText, kind_of
from sandbox_api.server.services.job_states import TERMINAL, JobState
from sandbox_api.server.services.job_transitions import JobTransitions
from sandbox_api.server.services.job_views import JobView, job_view
from sandbox_api.server.services.policy_catalog import scope_catalog_versions
from sandbox_api.server.services.quotas import DAY, HOUR, PrincipalUsage, check_submission
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.services.scopes import ActiveScope
from sandbox_api.server.store.models import JobRow

# Seconds a client is asked to wait before retrying a submission refused because the queue is full.
RETRY_AFTER_S = 5


class JobSubmission(JobTransitions):
    """``dry_run`` and ``submit`` (part of ``JobService``)."""

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
        versions = dict(active.versions) if active.versions is not None else self.catalog.current_versions()
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
        charged: JobBudget | None = None
        if queued is not None and plan is not None and dp is not None and self.budget is not None:
            # Before the job is stored as queued (BudgetExhausted: 409, nothing stored).
            cost = cost_of(plan, dp)
            status = self.budget.charge(
                job_id=job_id, scope=active.scope, grantee=who.name, cost=cost, actor=who.name
            )
            charged = JobBudget(spent=charge_of(cost).as_floats(), refunded=False, status=status)
        try:
            view = self._store(who, scope=scope, active=active, checked=checked, job_id=job_id, now=now)
        except Exception:
            if charged:
                assert self.budget is not None
                self.budget.refund(job_id=job_id, reason="the job could not be queued")
            raise
        # The answer says what the job spent and what its owner has left after it (ledger arithmetic,
        # never data: the same figure the dry run shows).
        return view if charged is None else replace(view, dp_budget=charged.to_dict())

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
            # Not flushed here: the row reaches the database at the commit, in its first state after
            # submission (queued or rejected), one INSERT instead of an INSERT and an UPDATE.
            session.add(row)
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

    def _usage(self, session: Session, owner: str) -> PrincipalUsage:
        """``owner``'s queued jobs, submissions of the last hour and CPU seconds of the last day.

        One query (a round trip each mattered on PostgreSQL): each row says which of the three it
        counts for, with the same conditions, compared in the database as before.
        """
        now = self.clock.now()
        queued = JobRow.state == JobState.QUEUED.value
        submitted = and_(JobRow.created_at > now - HOUR, JobRow.state != JobState.REJECTED.value)
        finished = and_(
            JobRow.updated_at > now - DAY,
            JobRow.state.in_([s.value for s in TERMINAL | {JobState.WITHHELD}]),
        )
        rows = session.execute(
            select(queued, submitted, finished, JobRow.created_at, JobRow.updated_at, JobRow.timings).where(
                JobRow.owner == owner, or_(queued, submitted, finished)
            )
        ).all()
        return PrincipalUsage(
            queued=sum(1 for row in rows if row[0]),
            submitted=[_aware(row[3]) for row in rows if row[1]],
            cpu=[(_aware(row[4]), float((row[5] or {}).get("cpu", 0.0))) for row in rows if row[2]],
        )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for aware columns: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
