"""Deterministic replay (DESIGN §10): run a released job again from what its receipt recorded.

The receipt is the reference. Replay checks it (signature, key validity), loads the scope version and
the dataset versions it names, checks that the stored scope document and query still hash to what was
signed, runs the query through the same pipeline (``policies.prepare``, the sandboxed executor,
``policies.check_output``) and compares the canonical result hash. Every difference is reported as a
:class:`Mismatch` naming the field; a crypto-shredded version ends the replay with who destroyed the
data and when. Each replay is audited (``job.replayed``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.errors import CryptoError
from crypto.hashing import sha256_hex
from crypto.keyring import LocalKeyring
from crypto.pseudonym import derive_key
from executors.base import Executor, JobSpec, Limits, PartRef, TableInput
from executors.errors import ExecutionError
from policies import PolicyError, Scope, check_output, prepare, result_hash
from sandbox_api.auth import Principal
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, NotFound
from sandbox_api.services.audit import AuditLog
from sandbox_api.services.catalog import VersionView
from sandbox_api.services.keys import KeyLifecycle, Shredded
from sandbox_api.services.policy_catalog import build_catalog
from sandbox_api.services.receipts import ReceiptService, query_facts
from sandbox_api.services.scopes import parse_stored
from sandbox_api.store.db import Database
from sandbox_api.store.models import DatasetRow, DatasetVersionRow, JobRow, ResultRow, ScopeVersionRow
from sandbox_api.verify import verify_receipt

MATCH, MISMATCH, DESTROYED, NOT_REPLAYABLE = "match", "mismatch", "data-destroyed", "not-replayable"


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: Any
    actual: Any
    message: str


@dataclass(frozen=True)
class ReplayReport:
    job_id: str
    outcome: str  # match | mismatch | data-destroyed | not-replayable
    message: str
    receipt_kid: str
    expected_result_hash: str
    actual_result_hash: str | None
    mismatches: list[Mismatch] = field(default_factory=list)
    destroyed: list[Shredded] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine: dict[str, str] = field(default_factory=dict)
    replayed_at: str = ""
    replayed_by: str = ""

    @property
    def match(self) -> bool:
        return self.outcome == MATCH


@dataclass(frozen=True)
class _Recorded:
    """What the replay needs, read in one transaction."""

    row: JobRow
    receipt: dict[str, Any]
    stored_hash: str | None
    scope_document: str | None
    versions: dict[str, DatasetVersionRow]
    destroyed: list[Shredded]


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
        base = _Base(
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
        if kind != "sql" or mode != "real":
            return base.report(
                NOT_REPLAYABLE,
                f"job {row.id} is a {kind} job on {mode} data; replay covers SQL jobs on real data",
                mismatches=mismatches,
            )
        scope = self._scope(recorded, mismatches)
        if scope is None:
            return base.finish(mismatches)
        try:
            actual, engine, notes = self._execute(recorded, scope, mismatches)
        except _Stop:
            return base.finish(mismatches)
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
        signed_versions = dict(receipt.get("datasets") or {})
        for dataset, version_id in sorted(signed_versions.items()):
            if dataset not in recorded.versions:
                found.append(
                    Mismatch(
                        f"datasets.{dataset}",
                        version_id,
                        None,
                        f"version {version_id} of {dataset} named by the receipt is not in the catalog",
                    )
                )
        return found

    def _scope(self, recorded: _Recorded, mismatches: list[Mismatch]) -> Scope | None:
        signed = recorded.receipt.get("scope") or {}
        name, version_id = signed.get("name"), signed.get("version_id")
        if recorded.scope_document is None:
            mismatches.append(
                Mismatch(
                    "scope.version_id", version_id, None, f"scope {name!r} has no stored version {version_id}"
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

    def _execute(
        self, recorded: _Recorded, scope: Scope, mismatches: list[Mismatch]
    ) -> tuple[str, dict[str, str], list[str]]:
        receipt, row = recorded.receipt, recorded.row
        views = {
            dataset: VersionView(
                version_id=v.version_id,
                state=v.state,
                created_at=iso(v.created_at),
                created_by=v.created_by,
                tables=list(v.manifest),
            )
            for dataset, v in recorded.versions.items()
        }
        try:
            prepared = prepare(row.sql, scope, build_catalog(views))
        except PolicyError as exc:
            mismatches.append(
                Mismatch(
                    "query",
                    "accepted",
                    "rejected",
                    f"the recorded query no longer passes the scope: {exc.detail}",
                )
            )
            raise _Stop from exc
        rewritten = sha256_hex(prepared.sql.encode("utf-8"))
        signed_rewritten = (receipt.get("query") or {}).get("rewritten_sha256")
        if rewritten != signed_rewritten:
            mismatches.append(
                Mismatch(
                    "query.rewritten_sha256",
                    signed_rewritten,
                    rewritten,
                    "the policy engine now rewrites the recorded query differently",
                )
            )
        tables = tuple(
            self._table_input(
                recorded.versions[t.dataset], dataset=t.dataset, table=t.table, sql_name=t.sql_name
            )
            for t in prepared.tables
        )
        key = derive_key(self.pseudonym_master, "scope:" + row.scope) if prepared.uses_keyed_hash else None
        spec = JobSpec(
            job_id=f"{row.id}-replay-{secrets.token_hex(4)}",
            sql=prepared.sql,
            tables=tables,
            keyed_hash_key=key,
            limits=self.limits,
        )
        try:
            result = self.executor.run(spec)
        except (ExecutionError, CryptoError) as exc:
            mismatches.append(
                Mismatch("data", "readable", exc.code, f"the recorded data cannot be read back: {exc.detail}")
            )
            raise _Stop from exc
        try:
            released = check_output(result.to_pandas(), scope.disclosure)
        except PolicyError as exc:
            mismatches.append(Mismatch("output_check", "passed", exc.code, exc.detail))
            raise _Stop from exc
        actual = result_hash(released.table)
        self._compare_result(
            receipt,
            actual,
            rows=released.table.shape[0],
            report=released.report.to_dict(),
            mismatches=mismatches,
        )
        engine = {str(k): str(v) for k, v in result.engine.items()}
        signed_engine = dict(receipt.get("engine") or {})
        notes = (
            []
            if engine == signed_engine
            else [f"engine versions differ: the job ran on {signed_engine}, the replay on {engine}"]
        )
        return actual, engine, notes

    @staticmethod
    def _compare_result(
        receipt: Mapping[str, Any],
        actual: str,
        *,
        rows: int,
        report: dict[str, Any],
        mismatches: list[Mismatch],
    ) -> None:
        facts = receipt.get("result") or {}
        if actual != facts.get("hash"):
            mismatches.append(
                Mismatch(
                    "result.hash",
                    facts.get("hash"),
                    actual,
                    f"the replayed result hashes to {actual}, the receipt signed {facts.get('hash')}",
                )
            )
        if rows != facts.get("row_count"):
            mismatches.append(
                Mismatch(
                    "result.row_count",
                    facts.get("row_count"),
                    rows,
                    f"the replay released {rows} rows, the receipt signed {facts.get('row_count')}",
                )
            )
        signed_report = receipt.get("suppression")
        if report != signed_report:
            changed = sorted(
                k
                for k in set(report) | set(signed_report or {})
                if report.get(k) != (signed_report or {}).get(k)
            )
            mismatches.append(
                Mismatch(
                    "suppression",
                    signed_report,
                    report,
                    f"the suppression report differs in {', '.join(changed)}",
                )
            )

    def _table_input(
        self, version: DatasetVersionRow, *, dataset: str, table: str, sql_name: str
    ) -> TableInput:
        domain, name = dataset.split("/", 1)
        parts = version.layout.get(table)
        if parts is None:
            raise NotFound(f"table {table!r} is not part of {dataset} version {version.version_id}")
        return TableInput(
            sql_name=sql_name,
            domain=domain,
            dataset=name,
            version_id=version.version_id,
            table=table,
            wrapped_key=version.wrapped_key,
            key_aad=version.key_aad.encode(),
            parts=tuple(
                PartRef(path=str((self.data_dir / p["path"]).resolve()), aad=str(p["aad"]).encode())
                for p in parts
            ),
        )


@dataclass(frozen=True)
class _Base:
    job_id: str
    receipt_kid: str
    expected: str

    def report(
        self,
        outcome: str,
        message: str,
        *,
        mismatches: list[Mismatch],
        actual: str | None = None,
        destroyed: list[Shredded] | None = None,
        engine: dict[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> ReplayReport:
        return ReplayReport(
            job_id=self.job_id,
            outcome=outcome,
            message=message,
            receipt_kid=self.receipt_kid,
            expected_result_hash=self.expected,
            actual_result_hash=actual,
            mismatches=mismatches,
            destroyed=destroyed or [],
            engine=engine or {},
            notes=notes or [],
        )

    def finish(
        self,
        mismatches: list[Mismatch],
        *,
        actual: str | None = None,
        engine: dict[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> ReplayReport:
        """Match when nothing differs; otherwise every difference, named, in the message."""
        if not mismatches:
            message = f"job {self.job_id} replayed to the same result hash {actual}"
            return self.report(MATCH, message, mismatches=[], actual=actual, engine=engine, notes=notes)
        message = f"job {self.job_id} does not replay to its receipt: " + "; ".join(
            m.message for m in mismatches
        )
        return self.report(
            MISMATCH, message, mismatches=mismatches, actual=actual, engine=engine, notes=notes
        )


class _Stop(Exception):
    """The replay cannot go on; the reason is already in the mismatches."""


def _version_row(session: Session, dataset: str, version_id: str) -> DatasetVersionRow | None:
    domain, name = dataset.split("/", 1)
    return session.execute(
        select(DatasetVersionRow)
        .join(DatasetRow)
        .where(
            DatasetRow.domain == domain, DatasetRow.name == name, DatasetVersionRow.version_id == version_id
        )
    ).scalar_one_or_none()
