"""The kinds of job, each a strategy for the three steps that differ between them.

One pipeline runs every job: submit (``JobService.submit``), claim, spec, execute, release
(``runner.py``, ``services/release.py``). What differs between a SQL job, a Python job and a mock job
is only:

* :meth:`JobKind.check`: what is checked at submit and stored with the job (findings, the rewritten
  SQL or input SELECTs, the tables it reads, the facts the release rules need);
* :meth:`JobKind.spec`: the executor spec (``services/job_specs.py``);
* :meth:`JobKind.candidate`: how the executor's result is read for the release function.

:func:`kind_of` picks the strategy from the stored ``kind`` and ``mode``; nothing else branches on them.
A Python job is accepted only under a scope with ``python.allowed``, its code compiled by the
restricted compiler first. A mock job is checked as its real twin would be, but those findings are
advice only: the job runs on synthetic twins, where row-level output is fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crypto.hashing import sha256_hex
from executors.base import JobSpec, ResultTable
from executors.pyjobs.compile import compile_job
from executors.pyjobs.errors import CodeRejected
from executors.python_job import PythonOrMockResult
from policies import Finding, PolicyViolation, Scope, check, domain_of, prepare_with
from policies.cohorts import lineage_of
from policies.dp.cost import cost_of
from policies.python_inputs import APPLIED, InputPlan, input_plan
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.services.catalog import VersionView
from sandbox_api.server.services.job_specs import JobSpecs, python_or_mock_spec, sql_spec
from sandbox_api.server.services.policy_catalog import PolicyContexts, build_catalog
from sandbox_api.server.services.python_plans import python_plan, refuse_two_domains
from sandbox_api.server.services.release import Candidate, PythonOrMockOutcome, TableResult
from sandbox_api.server.services.release_facts import ReleaseFacts, facts_of, unique_units_of
from sandbox_api.server.services.scopes import ActiveScope
from sandbox_api.server.store.models import JobRow


@dataclass(frozen=True)
class JobText:
    """What an operator sends: the scope, the kind and mode, and the SQL or the code."""

    scope: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    sql: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class JobCheck:
    """A dry run of any kind of job: allowed or not, every finding, and what would run."""

    allowed: bool
    findings: tuple[Any, ...]  # ``policies.Finding`` (or plain dicts with rule, message, fragment)
    rewritten_sql: str | None
    applied: tuple[str, ...]
    #: Differential privacy: what the job would spend and how noisy each column would be
    #: (``policies.dp.cost.DpCost.to_dict``), and what the caller has left (filled in by the service).
    dp: Mapping[str, Any] | None = None
    budget_left: Mapping[str, float] | None = None
    #: The kind the job runs as when it is not the one asked for: a SQL job that reads datasets of two
    #: domains runs as a cross-domain job (``services/crossdomain_jobs.py``), never in one sandbox.
    runs_as: Kind | None = None


@dataclass(frozen=True)
class Transition:
    """The reason and audit details of a submission's first transition (queued or rejected)."""

    reason: str
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Checked:
    """A submission as checked: the dry run's answer, and what storing the job needs."""

    report: JobCheck
    findings: list[dict[str, Any]]  # as stored with the job
    fields: Mapping[str, Any]  # JobRow columns
    submitted: Mapping[str, Any]  # details of the job.submitted audit event
    queued: Transition | None  # None: rejected
    rejected: Transition
    broken: str  # "<the query/it> breaks <n> rule(s)"


@dataclass(frozen=True)
class StoredJob:
    """A claimed job, as the runner runs it."""

    job_id: str
    scope: str
    scope_version: str
    kind: Kind
    mode: Mode
    sql: str  # the rewritten SQL (SQL jobs), or the input SELECTs
    source_sql: str  # the operator's SQL (a mock SQL job runs it as written, on the twins)
    code: str  # a Python job's code
    inputs: list[dict[str, Any]]
    dataset_versions: dict[str, str]
    uses_keyed_hash: bool
    attempt: int
    facts: ReleaseFacts

    @classmethod
    def of(cls, row: JobRow) -> StoredJob:
        """The stored job ``row`` as the runner runs it (and replay runs it again)."""
        return cls(
            job_id=row.id,
            scope=row.scope,
            scope_version=row.scope_version,
            kind=Kind(row.kind or Kind.SQL),
            mode=Mode(row.mode or Mode.REAL),
            sql=row.rewritten_sql or "",
            source_sql=row.sql,
            code=row.code or "",
            inputs=list(row.inputs),
            dataset_versions=dict(row.dataset_versions),
            uses_keyed_hash=row.uses_keyed_hash,
            attempt=row.attempts,
            facts=ReleaseFacts.from_json(row.release_facts),
        )


class JobKind(Protocol):
    def check(
        self,
        text: JobText,
        *,
        active: ActiveScope,
        versions: Mapping[str, VersionView],
        contexts: PolicyContexts,
    ) -> Checked: ...

    def spec(self, job: StoredJob, *, scope: Scope, specs: JobSpecs) -> JobSpec: ...

    def candidate(self, job: StoredJob, result: ResultTable) -> Candidate: ...


def finding_dicts(findings: Any) -> list[dict[str, Any]]:
    return [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in findings]


class SqlJobs:
    """SQL on real data: checked and rewritten by the policy engine, released through the output check."""

    def check(
        self,
        text: JobText,
        *,
        active: ActiveScope,
        versions: Mapping[str, VersionView],
        contexts: PolicyContexts,
    ) -> Checked:
        sql = text.sql or ""
        try:
            prepared = prepare_with(sql, contexts.get(active.scope, versions))
        except PolicyViolation as exc:
            findings = finding_dicts(exc.findings) or [
                {"rule": "policy", "message": exc.detail, "fragment": ""}
            ]
            return Checked(
                report=JobCheck(False, exc.findings, None, ()),
                findings=findings,
                fields=_sql_fields(sql, rewritten=None, applied=(), inputs=[], versions={}),
                submitted={"sql_sha256": sha256_hex(sql.encode())},
                queued=None,
                rejected=Transition("the query breaks the scope's rules; see findings", {}),
                broken="the query breaks",
            )
        if len({domain_of(t.dataset) for t in prepared.tables}) > 1:
            # Both domains' rows in one sandbox is what the product promises never happens: such a query
            # runs as a private join, or is refused with the shapes that can (imported here: that
            # strategy builds on this module's types).
            from sandbox_api.server.services.crossdomain_jobs import routed_sql

            return routed_sql(text, active=active, versions=versions, contexts=contexts)
        used = sorted({t.dataset for t in prepared.tables})
        facts = facts_of(
            prepared,
            active.scope,
            unique_units=unique_units_of(versions, [(t.dataset, t.table) for t in prepared.tables]),
        )
        dp = active.scope.disclosure.dp
        preview = (
            cost_of(prepared.dp_plan, dp).to_dict()
            if dp is not None and prepared.dp_plan is not None
            else None
        )
        return Checked(
            report=JobCheck(True, (), prepared.sql, prepared.applied, dp=preview),
            findings=[],
            fields={
                **_sql_fields(
                    sql,
                    rewritten=prepared.sql,
                    applied=prepared.applied,
                    inputs=[
                        {"dataset": t.dataset, "table": t.table, "sql_name": t.sql_name}
                        for t in prepared.tables
                    ],
                    versions={d: versions[d].version_id for d in used if d in versions},
                ),
                "uses_keyed_hash": bool(prepared.uses_keyed_hash),
                "release_facts": facts.to_json(),
            },
            submitted={"sql_sha256": sha256_hex(sql.encode())},
            queued=Transition(
                "accepted",
                {"rewritten_sha256": sha256_hex(prepared.sql.encode()), "passes": list(prepared.applied)},
            ),
            rejected=Transition("the query breaks the scope's rules; see findings", {}),
            broken="the query breaks",
        )

    def spec(self, job: StoredJob, *, scope: Scope, specs: JobSpecs) -> JobSpec:
        if len({domain_of(str(i["dataset"])) for i in job.inputs}) > 1:
            # A SQL job stored before such jobs were routed at submit (queued across an upgrade, or
            # replayed): it runs as the cross-domain job it is, or fails with the supported shapes; it
            # never runs as one query in one sandbox.
            from sandbox_api.server.services.crossdomain_jobs import CROSS_DOMAIN_JOBS

            return CROSS_DOMAIN_JOBS.spec(job, scope=scope, specs=specs)
        return sql_spec(
            job_id=job.job_id,
            sql=job.sql,
            tables=specs.tables(job.inputs, job.dataset_versions),
            scope=job.scope,
            uses_keyed_hash=job.uses_keyed_hash,
            pseudonym_master=specs.pseudonym_master,
            limits=specs.limits_for(scope),
            cohorts=specs.cohorts(scope),
            dp_lineage=lineage_of(scope).id if job.facts.dp_plan is not None else None,
            count_small_groups=specs.count_groups_below_k,
        )

    def candidate(self, job: StoredJob, result: ResultTable) -> Candidate:
        return TableResult(
            table=result.to_pandas(), engine=dict(result.engine), groups_below_k=result.groups_below_k
        )


@dataclass(frozen=True)
class PythonOrMockJobs:
    """Python jobs (``mock=False``), and jobs of either kind on mock twins (``mock=True``)."""

    mock: bool

    def check(
        self,
        text: JobText,
        *,
        active: ActiveScope,
        versions: Mapping[str, VersionView],
        contexts: PolicyContexts,
    ) -> Checked:
        # Stored and audited as plain strings, exactly as before the enums.
        kind, mode = text.kind.value, (Mode.MOCK if self.mock else Mode.REAL).value
        report, plan = self._check(active.scope, text, versions)
        accepted = report.allowed and plan is not None
        source = text.code if kind == "python" else text.sql
        used = sorted({t.dataset for t in plan.tables}) if plan is not None else []
        return Checked(
            report=report,
            findings=finding_dicts(report.findings),
            fields={
                "sql": text.sql or "",
                "code": text.code,
                "kind": kind,
                "mode": mode,
                "rewritten_sql": report.rewritten_sql,
                "applied": list(report.applied),
                "dataset_versions": {d: versions[d].version_id for d in used if d in versions},
                "inputs": [] if plan is None else stored_inputs(plan),
                "uses_keyed_hash": plan is not None and plan.uses_keyed_hash,
                # aggregate() tables carry no query facts: nothing is added up or shown disjoint.
                "release_facts": ReleaseFacts().to_json(),
            },
            submitted={
                "kind": kind,
                "mode": mode,
                ("code_sha256" if kind == "python" else "sql_sha256"): sha256_hex((source or "").encode()),
            },
            queued=Transition(
                "accepted (mock mode: runs on synthetic twins)" if self.mock else "accepted",
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

    def _check(
        self, scope: Scope, text: JobText, versions: Mapping[str, VersionView]
    ) -> tuple[JobCheck, InputPlan | None]:
        catalog = build_catalog(versions)
        plan = input_plan(scope, catalog)
        findings: list[Finding] = list(plan.findings)
        applied: tuple[str, ...] = ("mock_twins", *APPLIED) if self.mock else APPLIED
        if text.kind is Kind.PYTHON:
            # Under a scope over two domains a real job is handed only the tables its code reads, all of
            # one domain (``python_plans``); on the twins every table is synthetic, so that is advice.
            planned = python_plan(scope, catalog, text.code or "")
            if self.mock:
                advisory: tuple[Finding, ...] = tuple(
                    Finding(f.rule, f"in real mode: {f.message}", f.fragment) for f in planned.findings
                )
            else:
                plan, advisory = planned.plan, ()
                findings.extend(planned.findings)
            if not scope.python.allowed:
                findings.append(
                    Finding(
                        "python_not_allowed",
                        f"scope {scope.name!r} does not allow Python jobs; use SQL, or ask a policy officer "
                        "for `python: {allowed: true, modules: [...]}`",
                    )
                )
            findings.extend(_compile_findings(text.code or ""))
            allowed = not findings
            return (
                JobCheck(allowed, tuple(findings) + advisory, plan.sql_text, applied),
                plan if allowed else None,
            )
        # SQL in mock mode: the real-mode findings are advice; the twin takes row-level queries.
        advice = check(text.sql or "", scope, catalog)
        advisory = tuple(Finding(f.rule, f"in real mode: {f.message}", f.fragment) for f in advice.findings)
        allowed = not findings
        return (
            JobCheck(allowed, tuple(findings) + advisory, plan.sql_text, applied),
            plan if allowed else None,
        )

    def spec(self, job: StoredJob, *, scope: Scope, specs: JobSpecs) -> JobSpec:
        if not self.mock:
            # A job stored before Python jobs were planned by the tables they read (queued across an
            # upgrade, or replayed) fails here rather than put two domains' keys in one sandbox.
            refuse_two_domains(job.inputs)
        return python_or_mock_spec(
            job_id=job.job_id,
            kind=job.kind,
            mock=self.mock,
            code=job.code,
            sql=job.source_sql,
            inputs=job.inputs,
            tables=specs.tables(job.inputs, job.dataset_versions),
            scope=scope,
            uses_keyed_hash=job.uses_keyed_hash,
            sources=specs.mock_sources(
                job.inputs, job.dataset_versions, legacy_twin_size=job.facts.legacy_disclosure
            )
            if self.mock
            else (),
            pseudonym_master=specs.pseudonym_master,
            limits=specs.limits_for(scope),
            cohorts=None if self.mock else specs.cohorts(scope),
            legacy_disclosure=job.facts.legacy_disclosure,
        )

    def candidate(self, job: StoredJob, result: ResultTable) -> Candidate:
        return PythonOrMockOutcome(
            outcome=PythonOrMockResult.from_arrow(result.to_arrow()),
            kind=job.kind,
            mock=self.mock,
            inputs=job.inputs,
            engine=dict(result.engine),
        )


SQL_JOBS = SqlJobs()
PYTHON_JOBS = PythonOrMockJobs(mock=False)
MOCK_JOBS = PythonOrMockJobs(mock=True)


def kind_of(kind: Kind, mode: Mode) -> JobKind:
    """The strategy for a job of ``kind`` (sql | python | cross-domain) in ``mode`` (real | mock).

    >>> kind_of(Kind.SQL, Mode.REAL) is SQL_JOBS, kind_of(Kind.PYTHON, Mode.REAL) is PYTHON_JOBS
    (True, True)
    >>> kind_of(Kind.SQL, Mode.MOCK) is MOCK_JOBS
    True
    """
    if mode is Mode.MOCK:
        return MOCK_JOBS
    if kind is Kind.CROSS_DOMAIN:
        # Imported here: that strategy builds on this module's types (a module-level import is a cycle).
        from sandbox_api.server.services.crossdomain_jobs import CROSS_DOMAIN_JOBS

        return CROSS_DOMAIN_JOBS
    return SQL_JOBS if kind is Kind.SQL else PYTHON_JOBS


def _sql_fields(
    sql: str,
    *,
    rewritten: str | None,
    applied: Sequence[str],
    inputs: list[dict[str, str]],
    versions: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "sql": sql,
        "rewritten_sql": rewritten,
        "applied": list(applied),
        "dataset_versions": dict(versions),
        "inputs": inputs,
        "uses_keyed_hash": False,
    }


def stored_inputs(plan: InputPlan) -> list[dict[str, Any]]:
    """A Python or mock job's input tables as stored on the job (replay rebuilds them the same way).

    Column lists are stored as lists; rows stored before held comma-joined strings, which
    ``job_specs.input_queries`` still reads.
    """
    return [
        {
            "dataset": t.dataset,
            "table": t.table,
            "sql_name": t.sql_name,
            "sql": q.sql,
            "unit": q.unit,
            "pseudonymise": list(q.pseudonymise),
            "group_columns": list(q.group_columns),
        }
        for t, q in zip(plan.tables, plan.inputs, strict=True)
    ]


def _compile_findings(code: str) -> list[Finding]:
    """Every reason the restricted compiler refuses ``code`` (compiling runs nothing)."""
    try:
        compile_job(code)
    except CodeRejected as exc:
        return [Finding("python_code", message) for message in exc.findings] or [
            Finding("python_code", exc.detail)
        ]
    return []
