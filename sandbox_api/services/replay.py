"""Deterministic replay (DESIGN §10): run a released job again in the context it ran under.

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

It then builds the executor spec the way the runner does (``policies.prepare`` for SQL, the input plan
and ``ProgramRuns.spec`` for Python and mock jobs), runs it in the sandbox, and computes what would be
released from the result in one place, :func:`_release`. The released bytes are compared with the
receipt member by member. Every difference is a :class:`Mismatch` naming the field and its kind
(``replay_report``): the release differs (an incident), or replay could not rebuild the context (a
replay defect; it says what is missing). A crypto-shredded version ends the replay with who destroyed
the data and when. Each replay is audited (``job.replayed``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.errors import CryptoError, IntegrityError
from crypto.hashing import sha256_hex
from crypto.keyring import LocalKeyring
from crypto.pseudonym import derive_key
from executors.base import Executor, JobSpec, Limits, PartRef, ResultTable, TableInput
from executors.errors import ExecutionError
from executors.python_job import ProgramResult
from policies import Catalog, PolicyError, Scope, TableRef, check_output, prepare, result_hash
from sandbox_api.auth import Principal
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, NotFound, ServiceError
from sandbox_api.receipt_format import result_facts
from sandbox_api.services.audit import AuditLog
from sandbox_api.services.catalog import VersionView
from sandbox_api.services.jobs import JobService
from sandbox_api.services.keys import KeyLifecycle, Shredded
from sandbox_api.services.policy_catalog import (
    build_catalog,
    scope_catalog_versions,
    scope_dataset_refs,
)
from sandbox_api.services.program_inputs import input_plan
from sandbox_api.services.program_runs import ProgramRuns, _payload
from sandbox_api.services.receipts import ReceiptService, query_facts
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
from sandbox_api.store.db import Database
from sandbox_api.store.models import DatasetRow, DatasetVersionRow, JobRow, ResultRow, ScopeVersionRow
from sandbox_api.verify import verify_receipt

__all__ = ["Mismatch", "ReplayReport", "ReplayService"]

# The kinds of job replay rebuilds: (kind, mode) as stored on the job.
_REPLAYABLE = {("sql", "real"), ("python", "real"), ("sql", "mock"), ("python", "mock")}


@dataclass(frozen=True)
class _Recorded:
    """What the replay needs, read in one transaction."""

    row: JobRow
    receipt: dict[str, Any]
    stored_hash: str | None
    scope_document: str | None
    versions: dict[str, DatasetVersionRow]  # the versions the job read (the receipt's)
    destroyed: list[Shredded]


@dataclass(frozen=True)
class _Rebuilt:
    """The job as replay rebuilt it: the executor spec, and a Python or mock job's input tables."""

    spec: JobSpec
    inputs: list[dict[str, str]]


@dataclass(frozen=True)
class _Released:
    """What the release point stores from one executor result (and the receipt signs)."""

    columns: list[str]
    rows: list[list[Any]]
    result_hash: str
    report: dict[str, Any] | None  # None: released by output checkers (their decision, not recomputed)
    output: dict[str, Any] | None
    automatic: bool  # released without a person


def _release(
    result: ResultTable, *, row: JobRow, scope: Scope, inputs: Sequence[Mapping[str, str]]
) -> _Released:
    """What would be released from ``result`` for the job ``row`` under ``scope`` (``inputs``: the
    tables a Python or mock job read, in the form stored on a job).

    The one place replay settles a job, written as the release points settle it: a SQL result goes
    through ``check_output`` as in the runner; a Python or mock result through ``program_runs._payload``;
    a job that was withheld and released by output checkers releases the reviewed payload (its hash,
    its output object). To be switched to the shared release function once there is one.
    """
    if row.kind == "sql" and row.mode == "real":
        released = check_output(result.to_pandas(), scope.disclosure)
        body = json.loads(released.table.to_json(orient="split", index=False, date_format="iso"))
        return _Released(
            columns=[str(c) for c in body["columns"]],
            rows=[list(r) for r in body["data"]],
            result_hash=result_hash(released.table),
            report=released.report.to_dict(),
            output=None,
            automatic=True,
        )
    outcome = ProgramResult.from_arrow(result.to_arrow())
    mock = row.mode == "mock"
    payload, suppression, automatic = _payload(
        outcome, scope=scope, inputs=inputs, mock=mock, engine=result.engine
    )
    columns, rows = payload.columns_rows()
    if mock or automatic:
        output = None if row.kind == "sql" else payload.released_output()
        return _Released(columns, rows, payload.result_hash, suppression, output, automatic=True)
    return _Released(columns, rows, payload.result_hash, None, payload.released_output(), automatic=False)


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
    jobs: JobService  # the catalog, and the Python and mock job spec builder (``ProgramRuns``)

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
        program = row.kind != "sql" or row.mode != "real"
        refused = f"the recorded job does not pass its scope in the rebuilt context (catalog: {used})"
        try:
            if program:
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
                inputs = [
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
                ]
            else:
                prepared = prepare(row.sql, scope, catalog)
                rewritten, refs, keyed, inputs = prepared.sql, prepared.tables, prepared.uses_keyed_hash, []
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
        tables = tuple(self._table_input(recorded, ref, mismatches) for ref in refs)
        # Derived exactly as the runner derives it: same master key, same label.
        key = derive_key(self.pseudonym_master, "scope:" + row.scope) if keyed else None
        replay_id = f"{row.id}-replay-{secrets.token_hex(4)}"
        if not program:
            spec = JobSpec(
                job_id=replay_id, sql=rewritten, tables=tables, keyed_hash_key=key, limits=self.limits
            )
            return _Rebuilt(spec=spec, inputs=inputs)
        runs = ProgramRuns(jobs=self.jobs, pseudonym_master=self.pseudonym_master, limits=self.limits)
        try:
            # The job's own id: its per-job pseudonym key is derived from it.
            spec = runs.spec(
                job_id=row.id,
                kind=row.kind,
                mode=row.mode,
                code=row.code or "",
                sql=row.sql,
                inputs=inputs,
                tables=tables,
                keyed_hash_key=key,
                scope=scope,
                dataset_versions={d: v.version_id for d, v in recorded.versions.items()},
            )
        except (ServiceError, PolicyError) as exc:
            mismatches.append(
                context_missing("spec", f"the job's executor spec cannot be rebuilt: {exc.detail}")
            )
            raise _Stop from exc
        # The sandbox's own handle: a replay is not the job.
        return _Rebuilt(spec=replace(spec, job_id=replay_id), inputs=inputs)

    def _execute(
        self,
        recorded: _Recorded,
        scope: Scope,
        rebuilt: _Rebuilt,
        mismatches: list[Mismatch],
        notes: list[str],
    ) -> tuple[str, dict[str, str]]:
        receipt, row = recorded.receipt, recorded.row
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
        try:
            released = _release(result, row=row, scope=scope, inputs=rebuilt.inputs)
        except PolicyError as exc:
            mismatches.append(
                Mismatch(
                    "output_check", "passed", exc.code, f"the replayed result fails the check: {exc.detail}"
                )
            )
            raise _Stop from exc
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

    def _table_input(self, recorded: _Recorded, ref: TableRef, mismatches: list[Mismatch]) -> TableInput:
        version = recorded.versions.get(ref.dataset)
        parts = None if version is None else version.layout.get(ref.table)
        if version is None or parts is None:
            mismatches.append(
                context_missing(
                    f"datasets.{ref.dataset}",
                    f"the rebuilt job reads table {ref.table!r} of {ref.dataset}, and the receipt names no "
                    "version of it that holds that table",
                )
            )
            raise _Stop
        domain, name = ref.dataset.split("/", 1)
        # The unit lets a scale-out backend split a query over the unit-hash parts, as for the job.
        unit = next((str(t["unit"]) for t in version.manifest if t.get("name") == ref.table), None)
        return TableInput(
            sql_name=ref.sql_name,
            domain=domain,
            dataset=name,
            version_id=version.version_id,
            table=ref.table,
            wrapped_key=version.wrapped_key,
            key_aad=version.key_aad.encode(),
            parts=tuple(
                PartRef(path=str((self.data_dir / p["path"]).resolve()), aad=str(p["aad"]).encode())
                for p in parts
            ),
            unit=unit,
        )


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
