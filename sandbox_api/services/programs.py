"""Submission and dry run of Python jobs and of jobs in mock mode (SQL real-mode jobs: ``jobs.py``).

A Python job is accepted only under a scope with ``python.allowed``; its code is compiled with the
restricted compiler before it is stored, so code that cannot run is rejected with every finding,
like a SQL query that breaks the scope. A mock job is checked as its real twin would be, but those
findings are advice only: the job runs on synthetic twins, where row-level output is fine.

Both are stored, queued and audited exactly like SQL jobs (same table, same ``advance``), with
``kind`` and ``mode`` on the job and on every audit event about them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select

from crypto.hashing import sha256_hex
from executors.lifecycle import JobState
from executors.pyjobs.compile import compile_job
from executors.pyjobs.errors import CodeRejected
from policies import CheckReport, Finding, check
from sandbox_api.auth import Principal
from sandbox_api.errors import Forbidden, JobRejected, QueueFull, ScopeNotActive
from sandbox_api.services.jobs import RETRY_AFTER_S, JobService, JobView, finding_dicts, job_view
from sandbox_api.services.policy_catalog import build_catalog
from sandbox_api.services.program_inputs import APPLIED, InputPlan, input_plan
from sandbox_api.services.scopes import ActiveScope
from sandbox_api.store.models import JobRow

Kind = Literal["sql", "python"]
Mode = Literal["real", "mock"]


@dataclass(frozen=True)
class ProgramCheck:
    """A dry run of a Python or mock job: like ``policies.CheckReport``, for any kind and mode."""

    allowed: bool
    findings: tuple[Finding, ...]
    rewritten_sql: str | None
    applied: tuple[str, ...]
    plan: InputPlan | None = None


@dataclass(frozen=True)
class ProgramService:
    """Python and mock jobs on top of :class:`JobService` (same store, audit and transitions)."""

    jobs: JobService

    def dry_run(
        self, who: Principal, *, scope: str, kind: Kind, mode: Mode, sql: str | None, code: str | None
    ) -> ProgramCheck:
        """What submitting would do; nothing runs and nothing is stored."""
        active = self._granted_scope(who, scope, action="job.check")
        return self._check(active, kind=kind, mode=mode, sql=sql, code=code)

    def submit(
        self, who: Principal, *, scope: str, kind: Kind, mode: Mode, sql: str | None, code: str | None
    ) -> JobView:
        """Persist the job before answering: queued, or rejected with every finding (raises JobRejected)."""
        jobs = self.jobs
        active = self._granted_scope(who, scope, action="job.submit")
        versions = jobs.catalog.current_versions()
        report = self._check(active, kind=kind, mode=mode, sql=sql, code=code, versions=versions)
        plan = report.plan
        accepted = report.allowed and plan is not None
        findings = finding_dicts(report.findings)
        job_id = secrets.token_hex(16)
        now = jobs.clock.now()
        text = code if kind == "python" else sql
        with jobs.db.write() as session:
            if accepted:
                queued = session.execute(
                    select(func.count()).select_from(JobRow).where(JobRow.state == JobState.QUEUED.value)
                ).scalar_one()
                if queued >= jobs.queue_limit:
                    raise QueueFull(
                        f"{queued} jobs are waiting, the limit is {jobs.queue_limit}; retry in a few seconds",
                        extra={"retry_after": RETRY_AFTER_S},
                    )
            used = sorted({t.dataset for t in plan.tables}) if plan is not None else []
            row = JobRow(
                id=job_id,
                owner=who.name,
                scope=scope,
                scope_version=active.version_id,
                sql=sql or "",
                code=code,
                kind=kind,
                mode=mode,
                rewritten_sql=report.rewritten_sql,
                state=JobState.SUBMITTED.value,
                reason="submitted",
                findings=findings,
                applied=list(report.applied),
                dataset_versions={d: versions[d].version_id for d in used if d in versions},
                inputs=[]
                if plan is None
                else [
                    {
                        "dataset": t.dataset,
                        "table": t.table,
                        "sql_name": t.sql_name,
                        "sql": q.sql,
                        "unit": q.unit,
                        "pseudonymise": ",".join(q.pseudonymise),
                        "group_columns": ",".join(q.group_columns),
                    }
                    for t, q in zip(plan.tables, plan.inputs, strict=True)
                ],
                uses_keyed_hash=plan is not None and plan.uses_keyed_hash,
                attempts=0,
                cancel_requested=False,
                timings={},
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            jobs.audit.append(
                session,
                event="job.submitted",
                actor=who.name,
                details={
                    "job": job_id,
                    "scope": scope,
                    "scope_version": active.version_id,
                    "kind": kind,
                    "mode": mode,
                    ("code_sha256" if kind == "python" else "sql_sha256"): sha256_hex((text or "").encode()),
                },
            )
            if not accepted:
                jobs.advance(
                    session,
                    row,
                    JobState.REJECTED,
                    actor=who.name,
                    reason="the job breaks the scope's rules; see findings",
                    details={"findings": [f["rule"] for f in findings], "kind": kind, "mode": mode},
                )
            else:
                jobs.advance(
                    session,
                    row,
                    JobState.QUEUED,
                    actor=who.name,
                    reason="accepted" if mode == "real" else "accepted (mock mode: runs on synthetic twins)",
                    details={
                        "kind": kind,
                        "mode": mode,
                        "inputs_sha256": sha256_hex((report.rewritten_sql or "").encode()),
                        "passes": list(report.applied),
                        "dataset_versions": dict(row.dataset_versions),
                    },
                )
            view = job_view(row)
        if not accepted:
            raise JobRejected(
                f"job {job_id} was rejected: it breaks {len(findings)} rule(s) of scope {scope!r}",
                findings=findings,
                extra={"job_id": job_id, "state": JobState.REJECTED.value},
            )
        jobs.wake.set()
        return view

    # --- helpers -----------------------------------------------------------------------------
    def _check(
        self,
        active: ActiveScope,
        *,
        kind: Kind,
        mode: Mode,
        sql: str | None,
        code: str | None,
        versions: Any = None,
    ) -> ProgramCheck:
        scope = active.scope
        catalog = build_catalog(versions if versions is not None else self.jobs.catalog.current_versions())
        plan = input_plan(scope, catalog)
        findings: list[Finding] = list(plan.findings)
        applied: tuple[str, ...] = ("mock_twins", *APPLIED) if mode == "mock" else APPLIED
        if kind == "python":
            if not scope.python.allowed:
                findings.append(
                    Finding(
                        "python_not_allowed",
                        f"scope {scope.name!r} does not allow Python jobs; use SQL, or ask a policy officer "
                        "for `python: {allowed: true, modules: [...]}`",
                    )
                )
            findings.extend(_compile_findings(code or ""))
            allowed = not findings
            return ProgramCheck(allowed, tuple(findings), plan.sql_text, applied, plan if allowed else None)
        # SQL in mock mode: the real-mode findings are advice; the twin takes row-level queries.
        advice: CheckReport = check(sql or "", scope, catalog)
        advisory = tuple(Finding(f.rule, f"in real mode: {f.message}", f.fragment) for f in advice.findings)
        allowed = not findings
        return ProgramCheck(
            allowed,
            tuple(findings) + advisory,
            plan.sql_text,
            applied,
            plan if allowed else None,
        )

    def _granted_scope(self, who: Principal, scope: str, *, action: str) -> ActiveScope:
        jobs = self.jobs
        try:
            active = jobs.scopes.active(scope)
        except ScopeNotActive as exc:
            self._deny(who, action=action, scope=scope, reason=exc.detail)
            raise
        if not active.scope.is_grantee(who.name, who.groups):
            reason = f"{who.name} is not a grantee of scope {scope!r}"
            self._deny(who, action=action, scope=scope, reason=reason)
            raise Forbidden(reason + "; ask a policy officer to add you or your group")
        return active

    def _deny(self, who: Principal, *, action: str, scope: str, reason: str) -> None:
        self.jobs.audit.record(
            event="request.denied",
            actor=who.name,
            details={"action": action, "scope": scope, "reason": reason},
        )


def _compile_findings(code: str) -> list[Finding]:
    """Every reason the restricted compiler refuses ``code`` (compiling runs nothing)."""
    try:
        compile_job(code)
    except CodeRejected as exc:
        return [Finding("python_code", message) for message in exc.findings] or [
            Finding("python_code", exc.detail)
        ]
    return []
