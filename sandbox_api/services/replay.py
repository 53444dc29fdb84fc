"""Deterministic replay (docs/design.md §10): run a released job again in the context it ran under.

The receipt is the reference. Replay checks it (signature, key validity) and the stored records it
signed (result hash, query, scope document), then rebuilds exactly the context the job ran under:

* the recorded scope version;
* the catalog of **every** dataset the scope names, at the versions the job was checked against
  (recorded at submit in ``jobs.catalog_versions``; the datasets the job read are the receipt's
  versions). A job stored before that record existed falls back to the current versions of the
  datasets it did not read, and the report says so in a note;
* the dataset versions the job read (the receipt's, retired ones included);
* the keys derived for the scope (keyed-hash masks) and for the job (a Python job's pseudonyms), from
  the same master key and the same labels as the runner.

It then builds the executor spec with the runner's own strategy for the kind of job
(``services/job_kinds.py``: ``policies.prepare`` for SQL, the input plan for Python and mock jobs), runs
it in the sandbox, and decides what would be released with the one release function the services were
built with (``services/release.py``, through :func:`_release`), with the facts recorded at submit. The
released bytes are compared with the receipt member by member. Every difference is a :class:`Mismatch`
naming the field and its kind (``replay_report``): the release differs (an incident), or replay could
not rebuild the context (a replay defect; it says what is missing). A crypto-shredded version ends the
replay with who destroyed the data and when. Each replay is audited (``job.replayed``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.envelope import unseal
from crypto.errors import CryptoError, IntegrityError
from crypto.hashing import sha256_hex
from crypto.keyring import LocalKeyring
from executors.base import Executor, JobSpec, Limits, ResultTable
from executors.errors import ExecutionError
from policies import Catalog, PolicyError, Scope, prepare
from policies.cohorts import cells_of, lineage_of, releasable_positions, sketch_columns
from policies.dp.replay import replay_problems
from policies.python_inputs import input_plan
from sandbox_api.auth import Principal
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, NotFound, ServiceError
from sandbox_api.job_types import Kind, Mode
from sandbox_api.receipt_format import result_facts
from sandbox_api.services.audit import AuditLog
from sandbox_api.services.catalog import VersionView
from sandbox_api.services.job_kinds import StoredJob, kind_of, stored_inputs
from sandbox_api.services.job_specs import JobSpecs
from sandbox_api.services.jobs import JobService
from sandbox_api.services.keys import KeyLifecycle, Shredded
from sandbox_api.services.policy_catalog import (
    build_catalog,
    scope_catalog_versions,
    scope_dataset_refs,
)
from sandbox_api.services.receipts import ReceiptService, query_facts
from sandbox_api.services.release import ReleaseFn, TableResult, Withheld
from sandbox_api.services.replay_report import (
    DESTROYED,
    NOT_REPLAYABLE,
    Mismatch,
    ReplayReport,
    ReportBase,
    compare_result,
    context_missing,
)
from sandbox_api.services.scopes import parse_stored
from sandbox_api.services.settlement import dp_record_aad
from sandbox_api.store.db import Database
from sandbox_api.store.models import DatasetRow, DatasetVersionRow, JobRow, ResultRow, ScopeVersionRow
from sandbox_api.verify import verify_receipt

__all__ = ["Mismatch", "ReplayReport", "ReplayService"]

# The kinds of job replay rebuilds: (kind, mode) as stored on the job.
_REPLAYABLE = {(kind.value, mode.value) for kind in Kind for mode in Mode}


@dataclass(frozen=True)
class _Recorded:
    """What the replay needs, read in one transaction."""

    row: JobRow
    receipt: dict[str, Any]
    stored_hash: str | None
    scope_document: str | None
    versions: dict[str, DatasetVersionRow]  # the versions the job read (the receipt's)
    destroyed: list[Shredded]
    dp_sealed: bytes | None = None  # a DP job's sealed exact values and noise


@dataclass(frozen=True)
class _Rebuilt:
    """The job as replay rebuilt it, and its executor spec."""

    spec: JobSpec
    job: StoredJob


@dataclass(frozen=True)
class _Released:
    """What the release point stores from one executor result (and the receipt signs)."""

    columns: list[str]
    rows: list[list[Any]]
    result_hash: str
    report: dict[str, Any] | None  # None: released by output checkers (their decision, not recomputed)
    output: dict[str, Any] | None
    automatic: bool  # released without a person
    #: Differential privacy: how the re-run's exact values disagree with the sealed record (empty: none).
    dp_problems: tuple[str, ...] = ()


def _release(
    result: ResultTable,
    *,
    job: StoredJob,
    scope: Scope,
    release_fn: ReleaseFn,
    ledger: Callable[[TableResult], Mapping[int, str]],
    dp_record: Mapping[str, Any] | None = None,
) -> _Released:
    """What ``result`` releases for ``job`` under ``scope``: the runner's candidate and the one release
    function the services were built with, with the facts recorded at submit, after the released-cohort
    ledger as it stood before the job (``ledger``: the rows it withheld). A job that was withheld and
    released by output checkers releases the reviewed payload (its hash, its output object).

    A differentially private job's noise cannot be drawn again (OpenDP cannot be seeded): its sealed
    ``dp_record`` is given to the release function, which rebuilds the release from it, and the re-run's
    exact values must be the sealed ones (``replay_problems``)."""
    candidate = kind_of(job.kind, job.mode).candidate(job, result)
    problems: tuple[str, ...] = ()
    if isinstance(candidate, TableResult):
        candidate = replace(candidate, ledger_withheld=ledger(candidate))
        if dp_record is not None and job.facts.dp_plan is not None:
            problems = tuple(replay_problems(candidate.table, job.facts.dp_plan, dict(dp_record)))
            candidate = replace(candidate, dp_record=dp_record)
    settlement = release_fn(candidate, scope=scope, facts=job.facts)
    if isinstance(settlement, Withheld):
        payload = settlement.payload
        columns, rows = payload.columns_rows()
        return _Released(columns, rows, payload.result_hash, None, payload.released_output(), automatic=False)
    return _Released(
        settlement.columns,
        settlement.rows,
        settlement.result_hash,
        settlement.report.to_dict(),
        settlement.output,
        automatic=True,
        dp_problems=problems,
    )


@dataclass(frozen=True)
class ReplayService:
    db: Database
    audit: AuditLog
    clock: Clock
    keys: LocalKeyring
    lifecycle: KeyLifecycle
    executor: Executor
    limits: Limits
    data_dir: Path
    pseudonym_master: bytes
    jobs: JobService  # the catalog, and the one release function the services were built with

    def replay(self, who: Principal, job_id: str) -> ReplayReport:
        """Replay ``job_id`` and audit the outcome (auditors only; the route checks the role)."""
        started = iso(self.clock.now())
        recorded = self._load(job_id)
        report = self._run(recorded)
        report = replace(report, replayed_at=started, replayed_by=who.name)
        self.audit.record(
            event="job.replayed",
            actor=who.name,
            details={
                "job": job_id,
                "outcome": report.outcome,
                "kind": report.kind,
                "mismatches": [m.field for m in report.mismatches],
                "expected_result_hash": report.expected_result_hash,
                "actual_result_hash": report.actual_result_hash,
            },
        )
        return report

    # --- loading -----------------------------------------------------------------------------------
    def _load(self, job_id: str) -> _Recorded:
        with self.db.read() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id} does not exist")
            receipt = ReceiptService.load(session, job_id)
            if receipt is None:
                raise Conflict(
                    f"job {job_id} is {row.state}; only a released job with a receipt can be replayed"
                )
            stored = session.get(ResultRow, job_id)
            scope = receipt.get("scope") or {}
            scope_row = session.execute(
                select(ScopeVersionRow).where(
                    ScopeVersionRow.name == str(scope.get("name")),
                    ScopeVersionRow.version_id == str(scope.get("version_id")),
                )
            ).scalar_one_or_none()
            versions: dict[str, DatasetVersionRow] = {}
            destroyed: list[Shredded] = []
            for dataset, version_id in dict(receipt.get("datasets") or {}).items():
                version = _version_row(session, dataset, str(version_id))
                if version is None:
                    continue
                versions[dataset] = version
                shred = self.lifecycle.shredded(session, dataset=dataset, version_id=str(version_id))
                if shred is not None:
                    destroyed.append(shred)
            return _Recorded(
                row=row,
                receipt=receipt,
                stored_hash=None if stored is None else stored.result_hash,
                scope_document=None if scope_row is None else scope_row.document,
                versions=versions,
                destroyed=destroyed,
                dp_sealed=None if stored is None else stored.dp_sealed,
            )

    # --- the replay itself -------------------------------------------------------------------------
    def _run(self, recorded: _Recorded) -> ReplayReport:
        receipt, row = recorded.receipt, recorded.row
        base = ReportBase(
            job_id=row.id,
            receipt_kid=str(receipt.get("kid", "")),
            expected=str((receipt.get("result") or {}).get("hash", "")),
        )
        mismatches = self._check_records(recorded)
        if recorded.destroyed:
            destroyed = "; ".join(
                f"version {s.version_id} of {s.dataset} was crypto-shredded at {s.shredded_at} by "
                f"{s.shredded_by}" + (f" ({s.reason})" if s.reason else "")
                for s in recorded.destroyed
            )
            return base.report(
                DESTROYED,
                f"job {row.id} cannot be replayed: its data was destroyed: {destroyed}",
                mismatches=mismatches,
                destroyed=recorded.destroyed,
            )
        query = receipt.get("query") or {}
        kind, mode = str(query.get("kind", "sql")), str(query.get("mode", "real"))
        if (kind, mode) not in _REPLAYABLE:
            return base.report(
                NOT_REPLAYABLE,
                f"job {row.id} is a {kind} job on {mode} data; replay knows SQL and Python jobs on real "
                "or mock data",
                mismatches=mismatches,
            )
        scope = self._scope(recorded, mismatches)
        if scope is None:
            return base.finish(mismatches)
        notes: list[str] = []
        try:
            rebuilt = self._spec(recorded, scope, mismatches, notes)
            actual, engine = self._execute(recorded, scope, rebuilt, mismatches, notes)
        except _Stop:
            return base.finish(mismatches, notes=notes)
        return base.finish(mismatches, actual=actual, engine=engine, notes=notes)

    def _check_records(self, recorded: _Recorded) -> list[Mismatch]:
        """The receipt against its signature and against what the database holds for the job now."""
        receipt, row = recorded.receipt, recorded.row
        found: list[Mismatch] = []
        try:
            verify_receipt(receipt, {k.kid: k for k in self.keys.signing_keys()})
        except CryptoError as exc:
            found.append(Mismatch("receipt.signature", "valid", "invalid", exc.detail))
        facts = (receipt.get("result") or {}).get("hash")
        if recorded.stored_hash != facts:
            found.append(
                Mismatch(
                    "result.stored_hash",
                    facts,
                    recorded.stored_hash,
                    f"the stored result's hash {recorded.stored_hash} is not the signed {facts}",
                )
            )
        now = query_facts(row)
        signed = receipt.get("query") or {}
        for key in ("original_sha256", "rewritten_sha256"):
            if signed.get(key) != now[key]:
                found.append(
                    Mismatch(
                        f"query.{key}",
                        signed.get(key),
                        now[key],
                        f"the stored query of job {row.id} no longer hashes to the signed query.{key}; "
                        "it was edited after the job ran",
                    )
                )
        signed_catalog = (receipt.get("scope") or {}).get("catalog")
        if signed_catalog is not None and signed_catalog != dict(row.catalog_versions or {}):
            found.append(
                Mismatch(
                    "scope.catalog",
                    signed_catalog,
                    row.catalog_versions,
                    f"the catalog recorded for job {row.id} is not the one its receipt signed; the record "
                    "was edited after the job ran",
                )
            )
        for dataset, version_id in sorted(dict(receipt.get("datasets") or {}).items()):
            if dataset not in recorded.versions:
                found.append(
                    context_missing(
                        f"datasets.{dataset}",
                        f"version {version_id} of {dataset}, which the job read (the receipt names it), "
                        "is not in the catalog",
                        expected=version_id,
                    )
                )
        return found

    def _scope(self, recorded: _Recorded, mismatches: list[Mismatch]) -> Scope | None:
        signed = recorded.receipt.get("scope") or {}
        name, version_id = signed.get("name"), signed.get("version_id")
        if recorded.scope_document is None:
            mismatches.append(
                context_missing(
                    "scope.version_id",
                    f"scope {name!r} has no stored version {version_id}",
                    expected=version_id,
                )
            )
            return None
        try:
            scope = parse_stored(recorded.scope_document)
        except PolicyError as exc:
            mismatches.append(
                Mismatch(
                    "scope.document",
                    version_id,
                    None,
                    f"the stored document of scope {name!r} version {version_id} no longer parses "
                    f"({exc.detail}); it was edited after the job ran",
                )
            )
            return None
        now = str(scope.version_id)
        if now != version_id:
            mismatches.append(
                Mismatch(
                    "scope.version_id",
                    version_id,
                    now,
                    f"the stored document of scope {name!r} version {version_id} now hashes to {now}; the "
                    "scope was edited after the job ran",
                )
            )
        return scope

    # --- the context and the spec ------------------------------------------------------------------
    def _catalog(
        self, recorded: _Recorded, scope: Scope, mismatches: list[Mismatch], notes: list[str]
    ) -> Catalog:
        """The catalog the job was checked against: every dataset the scope names, at its version then."""
        row = recorded.row
        views = {ref: _view(v) for ref, v in recorded.versions.items()}
        if row.catalog_versions is None:
            current = {ref: v for ref, v in self.jobs.catalog.current_versions().items() if ref not in views}
            filled = scope_catalog_versions(scope, {ref: v.version_id for ref, v in current.items()})
            views.update({ref: current[ref] for ref in filled})
            if filled:
                notes.append(
                    f"job {row.id} was submitted before jobs recorded their catalog: the datasets of its "
                    "scope it did not read were rebuilt at their current versions ("
                    + ", ".join(f"{ref} {v}" for ref, v in sorted(filled.items()))
                    + "), which may differ from those it was checked against"
                )
            return build_catalog(views)
        recorded_ids = dict(row.catalog_versions)
        with self.db.read() as session:
            for ref in scope_dataset_refs(scope):
                if ref in views:
                    continue
                version_id = recorded_ids.get(ref)
                version = None if version_id is None else _version_row(session, ref, str(version_id))
                if version is None:
                    mismatches.append(
                        context_missing(
                            f"catalog.{ref}",
                            f"the catalog recorded for job {row.id} names no version of {ref}, a dataset "
                            "its scope names"
                            if version_id is None
                            else f"version {version_id} of {ref}, which the job's scope names and the job "
                            "was checked against, is not in the catalog",
                            expected=version_id,
                        )
                    )
                    continue
                views[ref] = _view(version)
        return build_catalog(views)

    def _spec(
        self, recorded: _Recorded, scope: Scope, mismatches: list[Mismatch], notes: list[str]
    ) -> _Rebuilt:
        """The executor spec, built as the runner builds it, from the rebuilt context."""
        row = recorded.row
        before = len(mismatches)
        catalog = self._catalog(recorded, scope, mismatches, notes)
        if len(mismatches) > before:
            raise _Stop  # a context with a dataset missing proves nothing: the missing part is named
        used = ", ".join(f"{d.key} {d.version_id}" for d in catalog.datasets)
        python_or_mock = row.kind != Kind.SQL or row.mode != Mode.REAL
        refused = f"the recorded job does not pass its scope in the rebuilt context (catalog: {used})"
        try:
            if python_or_mock:
                plan = input_plan(scope, catalog)
                if plan.findings:
                    mismatches.append(
                        context_missing(
                            "query",
                            f"{refused}: its tables cannot be planned: "
                            + "; ".join(f"{f.rule}: {f.message}" for f in plan.findings),
                            expected="accepted",
                            actual="rejected",
                        )
                    )
                    raise _Stop
                rewritten, refs, keyed = plan.sql_text, plan.tables, plan.uses_keyed_hash
                inputs = stored_inputs(plan)
            else:
                prepared = prepare(row.sql, scope, catalog)
                rewritten, refs, keyed = prepared.sql, prepared.tables, prepared.uses_keyed_hash
                inputs = [{"dataset": t.dataset, "table": t.table, "sql_name": t.sql_name} for t in refs]
        except PolicyError as exc:
            mismatches.append(
                context_missing(
                    "query",
                    f"{refused}: {exc.detail}",
                    expected="accepted",
                    actual="rejected",
                )
            )
            raise _Stop from exc
        signed = (recorded.receipt.get("query") or {}).get("rewritten_sha256")
        digest = sha256_hex(rewritten.encode("utf-8"))
        if digest != signed:
            message = "the policy engine rewrites the recorded query differently in the rebuilt context"
            if row.catalog_versions is None:
                mismatches.append(
                    context_missing(
                        "query.rewritten_sha256",
                        message + " (rebuilt partly from current versions: see notes)",
                        expected=signed,
                        actual=digest,
                    )
                )
            else:
                mismatches.append(Mismatch("query.rewritten_sha256", signed, digest, message))
        missing = sorted({ref.dataset for ref in refs} - set(recorded.versions))
        if missing:
            mismatches.append(
                context_missing(
                    f"datasets.{missing[0]}",
                    f"the rebuilt job reads {', '.join(missing)}, and the receipt names no version of it",
                )
            )
            raise _Stop
        # The job as the runner ran it, in the rebuilt context; its spec is built by the same strategy
        # (``services/job_kinds.py``), so the keys are derived from the same master key and labels (the
        # job's own id: a Python job's per-job pseudonym key is derived from it).
        job = replace(
            StoredJob.of(row),
            sql=rewritten,
            inputs=inputs,
            dataset_versions={d: v.version_id for d, v in recorded.versions.items()},
            uses_keyed_hash=keyed,
        )
        specs = JobSpecs(
            catalog=self.jobs.catalog,
            pseudonym_master=self.pseudonym_master,
            limits=self.limits,
            ledger=self.jobs.ledger,
        )
        try:
            spec = kind_of(job.kind, job.mode).spec(job, scope=scope, specs=specs)
        except (ServiceError, PolicyError) as exc:
            mismatches.append(
                context_missing("spec", f"the job's executor spec cannot be rebuilt: {exc.detail}")
            )
            raise _Stop from exc
        # The sandbox's own handle: a replay is not the job.
        return _Rebuilt(spec=replace(spec, job_id=f"{row.id}-replay-{secrets.token_hex(4)}"), job=job)

    def _execute(
        self,
        recorded: _Recorded,
        scope: Scope,
        rebuilt: _Rebuilt,
        mismatches: list[Mismatch],
        notes: list[str],
    ) -> tuple[str, dict[str, str]]:
        receipt = recorded.receipt
        try:
            result = self.executor.run(rebuilt.spec)
        except (ExecutionError, CryptoError) as exc:
            if isinstance(exc, IntegrityError):
                # A part that fails authentication was altered or swapped: the data differs.
                mismatches.append(
                    Mismatch(
                        "data", "readable", exc.code, f"the recorded data cannot be read back: {exc.detail}"
                    )
                )
            else:
                mismatches.append(
                    context_missing(
                        "data",
                        f"the sandbox could not run the replay: {exc.code}: {exc.detail}",
                        expected="readable",
                        actual=exc.code,
                    )
                )
            raise _Stop from exc
        record = self._dp_record(recorded, rebuilt.job, scope, mismatches)
        try:
            released = _release(
                result,
                job=rebuilt.job,
                scope=scope,
                release_fn=self.jobs.release,
                ledger=lambda candidate: self._ledger_withheld(
                    candidate, scope=scope, job_id=recorded.row.id
                ),
                dp_record=record,
            )
        except PolicyError as exc:
            mismatches.append(
                Mismatch(
                    "output_check", "passed", exc.code, f"the replayed result fails the check: {exc.detail}"
                )
            )
            raise _Stop from exc
        mismatches.extend(
            Mismatch("dp.exact", "the sealed exact values", "different values", problem)
            for problem in released.dp_problems
        )
        reviewed = list(dict(receipt.get("suppression") or {}).get("reviewed_by") or [])
        if released.automatic == bool(reviewed):
            mismatches.append(
                Mismatch(
                    "release.decision",
                    "output checkers" if reviewed else "automatic",
                    "automatic" if released.automatic else "output checkers",
                    "the job was released "
                    + (f"by output checkers ({', '.join(reviewed)})" if reviewed else "automatically")
                    + ", but its replayed result "
                    + ("passes the automatic check" if released.automatic else "needs an output checker"),
                )
            )
        if reviewed:
            notes.append(
                f"released by output checker(s) {', '.join(reviewed)} after review: the released bytes are "
                "compared; the suppression report is their decision"
            )
        facts = result_facts(
            canonical_hash=released.result_hash,
            columns=released.columns,
            rows=released.rows,
            output=released.output,
        )
        mismatches.extend(compare_result(receipt, facts, report=None if reviewed else released.report))
        engine = {str(k): str(v) for k, v in result.engine.items()}
        signed_engine = dict(receipt.get("engine") or {})
        if engine != signed_engine:
            notes.append(f"engine versions differ: the job ran on {signed_engine}, the replay on {engine}")
        return released.result_hash, engine

    def _dp_record(
        self, recorded: _Recorded, job: StoredJob, scope: Scope, mismatches: list[Mismatch]
    ) -> dict[str, Any] | None:
        """A DP job's sealed record (exact values, noise), unsealed under the results key."""
        if job.facts.dp_plan is None or scope.disclosure.dp is None:
            return None
        if recorded.dp_sealed is None:
            mismatches.append(
                Mismatch(
                    "dp.record",
                    "sealed",
                    "missing",
                    "the job was released with differential privacy but its sealed noise record is missing",
                )
            )
            raise _Stop
        try:
            plain = unseal(self.jobs.results_key, recorded.dp_sealed, aad=dp_record_aad(recorded.row.id))
        except CryptoError as exc:
            mismatches.append(
                Mismatch(
                    "dp.record", "readable", exc.code, f"the sealed noise record cannot be read: {exc.detail}"
                )
            )
            raise _Stop from exc
        record: dict[str, Any] = json.loads(plain)
        return record

    def _ledger_withheld(self, candidate: TableResult, *, scope: Scope, job_id: str) -> dict[int, str]:
        """The rows the released-cohort ledger withheld from the job, decided again against the ledger
        as it stood before the job (nothing is recorded); none for a job it never checked."""
        ledger = self.jobs.ledger
        if ledger is None or scope.disclosure.dp is not None or not sketch_columns(candidate.table.columns):
            return {}
        positions = releasable_positions(candidate.table, scope.disclosure)
        with self.db.read() as session:
            try:
                decisions = ledger.replay(
                    session,
                    lineage_of(scope),
                    cells_of(candidate.table, positions),
                    min_units=scope.disclosure.min_units,
                    job_id=job_id,
                )
            except NotFound:
                return {}
        return {p: d.reason for p, d in zip(positions, decisions, strict=True) if not d.released}


class _Stop(Exception):
    """The replay cannot go on; the reason is already in the mismatches."""


def _view(version: DatasetVersionRow) -> VersionView:
    return VersionView(
        version_id=version.version_id,
        state=version.state,
        created_at=iso(version.created_at),
        created_by=version.created_by,
        tables=list(version.manifest),
    )


def _version_row(session: Session, dataset: str, version_id: str) -> DatasetVersionRow | None:
    domain, name = dataset.split("/", 1)
    return session.execute(
        select(DatasetVersionRow)
        .join(DatasetRow)
        .where(
            DatasetRow.domain == domain, DatasetRow.name == name, DatasetVersionRow.version_id == version_id
        )
    ).scalar_one_or_none()
