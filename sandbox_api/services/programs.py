"""Submission and dry run of Python jobs and of jobs in mock mode (SQL real-mode jobs: ``jobs.py``).

A Python job is accepted only under a scope with ``python.allowed``; its code is compiled with the
restricted compiler before it is stored, so code that cannot run is rejected with every finding,
like a SQL query that breaks the scope. A mock job is checked as its real twin would be, but those
findings are advice only: the job runs on synthetic twins, where row-level output is fine.

Both are stored, queued and audited exactly like SQL jobs (same table, same ``advance``), with
``kind`` and ``mode`` on the job and on every audit event about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from crypto.hashing import sha256_hex
from executors.pyjobs.compile import compile_job
from executors.pyjobs.errors import CodeRejected
from policies import CheckReport, Finding, check
from sandbox_api.auth import Principal
from sandbox_api.errors import Forbidden, ScopeNotActive
from sandbox_api.services.jobs import JobService, JobView, Transition, finding_dicts
from sandbox_api.services.policy_catalog import build_catalog
from sandbox_api.services.program_inputs import APPLIED, InputPlan, input_plan
from sandbox_api.services.scopes import ActiveScope

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
        text = code if kind == "python" else sql
        used = sorted({t.dataset for t in plan.tables}) if plan is not None else []
        return jobs.persist_submission(
            who,
            scope=scope,
            active=active,
            findings=findings,
            fields={
                "sql": sql or "",
                "code": code,
                "kind": kind,
                "mode": mode,
                "rewritten_sql": report.rewritten_sql,
                "applied": list(report.applied),
                "dataset_versions": {d: versions[d].version_id for d in used if d in versions},
                "inputs": []
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
                "uses_keyed_hash": plan is not None and plan.uses_keyed_hash,
            },
            submitted={
                "kind": kind,
                "mode": mode,
                ("code_sha256" if kind == "python" else "sql_sha256"): sha256_hex((text or "").encode()),
            },
            queued=Transition(
                "accepted" if mode == "real" else "accepted (mock mode: runs on synthetic twins)",
                {
                    "kind": kind,
                    "mode": mode,
                    "inputs_sha256": sha256_hex((report.rewritten_sql or "").encode()),
                    "passes": list(report.applied),
                },
            )
            if accepted
            else None,
            rejected=Transition(
                "the job breaks the scope's rules; see findings", {"kind": kind, "mode": mode}
            ),
            broken="it breaks",
        )

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
