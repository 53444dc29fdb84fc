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

The pieces: ``replay_records`` (what was recorded, checked against the receipt), ``replay_context``
(the rebuilt catalog and spec), ``replay_report`` (mismatches and their kinds); this module runs the job
again and decides what it releases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from crypto.errors import CryptoError, IntegrityError
from crypto.key_provider import DeploymentKeys
from crypto.profile import unseal_data
from executors.base import Executor, Limits, ResultTable
from executors.crossdomain.placed import run_job
from executors.errors import ExecutionError
from policies import PolicyError, Scope
from policies.dp.replay import replay_problems
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import NotFound
from sandbox_api.job_types import Kind, Mode
from sandbox_api.receipt_format import result_facts
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.cohort_ledger import ledger_withheld
from sandbox_api.server.services.crossdomain_jobs import released_keys_only
from sandbox_api.server.services.job_kinds import StoredJob, kind_of
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.keys import KeyLifecycle
from sandbox_api.server.services.release import (
    PythonOrMockOutcome,
    ReleaseFn,
    TableResult,
    Withheld,
    ledger_table,
)
from sandbox_api.server.services.replay_context import Rebuilt, rebuild
from sandbox_api.server.services.replay_records import Recorded, check_records, load_recorded, recorded_scope
from sandbox_api.server.services.replay_report import (
    DESTROYED,
    NOT_REPLAYABLE,
    Mismatch,
    ReplayReport,
    ReplayStopped,
    ReportBase,
    compare_result,
    context_missing,
)
from sandbox_api.server.services.settlement import dp_record_aad
from sandbox_api.server.store.db import Database

__all__ = ["Mismatch", "ReplayReport", "ReplayService"]

# The kinds of job replay rebuilds: (kind, mode) as stored on the job.
_REPLAYABLE = {(kind.value, mode.value) for kind in Kind for mode in Mode}


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
    ledger: Callable[[pd.DataFrame], Mapping[int, str]],
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
    table = ledger_table(candidate)
    if isinstance(candidate, TableResult | PythonOrMockOutcome) and table is not None:
        candidate = replace(candidate, ledger_withheld=ledger(table))
    if isinstance(candidate, TableResult) and dp_record is not None and job.facts.dp_plan is not None:
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
    keys: DeploymentKeys
    lifecycle: KeyLifecycle
    executor: Executor
    limits: Limits
    pseudonym_master: bytes
    jobs: JobService  # the catalog, and the one release function the services were built with

    def replay(self, who: Principal, job_id: str) -> ReplayReport:
        """Replay ``job_id`` and audit the outcome (auditors only; the route checks the role)."""
        started = iso(self.clock.now())
        with self.db.read() as session:
            recorded = load_recorded(session, self.lifecycle, job_id)
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

    def _run(self, recorded: Recorded) -> ReplayReport:
        receipt, row = recorded.receipt, recorded.row
        base = ReportBase(
            job_id=row.id,
            receipt_kid=str(receipt.get("kid", "")),
            expected=str((receipt.get("result") or {}).get("hash", "")),
        )
        mismatches = check_records(recorded, self.keys.signing_keys())
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
        scope = recorded_scope(recorded, mismatches)
        if scope is None:
            return base.finish(mismatches)
        notes: list[str] = []
        try:
            rebuilt = rebuild(
                recorded,
                scope,
                mismatches,
                notes,
                jobs=self.jobs,
                pseudonym_master=self.pseudonym_master,
                limits=self.limits,
            )
            actual, engine = self._execute(recorded, scope, rebuilt, mismatches, notes)
        except ReplayStopped:
            return base.finish(mismatches, notes=notes)
        return base.finish(mismatches, actual=actual, engine=engine, notes=notes)

    # --- the context and the spec ------------------------------------------------------------------
    def _execute(
        self,
        recorded: Recorded,
        scope: Scope,
        rebuilt: Rebuilt,
        mismatches: list[Mismatch],
        notes: list[str],
    ) -> tuple[str, dict[str, str]]:
        receipt = recorded.receipt
        record = self._dp_record(recorded, rebuilt.job, scope, mismatches)
        # A cross-domain job whose keys the gateway chose sums again only the cells it released.
        spec = released_keys_only(rebuilt.spec, record, rebuilt.job.facts.dp_plan)
        try:
            result = run_job(self.executor, spec)
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
            raise ReplayStopped from exc
        try:
            released = _release(
                result,
                job=rebuilt.job,
                scope=scope,
                release_fn=self.jobs.release,
                ledger=lambda table: self._ledger_withheld(table, scope=scope, job_id=recorded.row.id),
                dp_record=record,
            )
        except PolicyError as exc:
            mismatches.append(
                Mismatch(
                    "output_check", "passed", exc.code, f"the replayed result fails the check: {exc.detail}"
                )
            )
            raise ReplayStopped from exc
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
        self, recorded: Recorded, job: StoredJob, scope: Scope, mismatches: list[Mismatch]
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
            raise ReplayStopped
        try:
            plain = unseal_data(self.jobs.results_key, recorded.dp_sealed, aad=dp_record_aad(recorded.row.id))
        except CryptoError as exc:
            mismatches.append(
                Mismatch(
                    "dp.record", "readable", exc.code, f"the sealed noise record cannot be read: {exc.detail}"
                )
            )
            raise ReplayStopped from exc
        record: dict[str, Any] = json.loads(plain)
        return record

    def _ledger_withheld(self, table: pd.DataFrame, *, scope: Scope, job_id: str) -> dict[int, str]:
        """The rows the released-cohort ledger withheld from the job, decided again against the ledger
        as it stood before the job (nothing is recorded); none for a job it never checked."""
        ledger = self.jobs.ledger
        if ledger is None:
            return {}
        with self.db.read() as session:
            try:
                return ledger_withheld(
                    table,
                    scope,
                    lambda lineage, cells, k: ledger.replay(
                        session, lineage, cells, min_units=k, job_id=job_id
                    ),
                )
            except NotFound:
                return {}
