"""Settling a job: the release function's answer, stored. The only code that releases or withholds.

``Settlements.decide`` asks the release function (``services/release.py``, injected into
``JobService.release``) what a result releases; ``Settlements.store`` writes that answer in the
caller's transaction: a :class:`Released` is sealed, stored, moved to ``released`` and signed in a
receipt; a :class:`Withheld` is sealed for output checkers and moved to ``withheld``. The runner (SQL,
Python and mock jobs) and the review (a release after review) both settle through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from crypto.profile import seal_data
from policies import Scope
from sandbox_api.errors import JobStateConflict
from sandbox_api.server.services.audit import SYSTEM_ACTOR
from sandbox_api.server.services.cohort_ledger import ledger_withheld
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.release import (
    Candidate,
    PythonOrMockOutcome,
    Released,
    Settlement,
    TableResult,
    Withheld,
    ledger_table,
)
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.services.withheld import WithheldPayload
from sandbox_api.server.store.models import JobRow, ResultRow, WithheldRow


def withheld_aad(job_id: str) -> bytes:
    """The associated data a withheld output is sealed with (never a result's: they cannot be swapped)."""
    return f"withheld:{job_id}".encode()


def dp_record_aad(job_id: str) -> bytes:
    """The associated data a DP job's sealed exact values and noise are sealed with."""
    return f"dp-record:{job_id}".encode()


@dataclass(frozen=True)
class Settlements:
    jobs: JobService

    def decide(self, candidate: Candidate, *, scope: Scope, facts: ReleaseFacts) -> Settlement:
        """What ``candidate`` releases: the one release function, as the services were built with it."""
        return self.jobs.release(candidate, scope=scope, facts=facts)

    def against_ledger(
        self,
        session: Session,
        row: JobRow,
        candidate: Candidate,
        settlement: Settlement,
        *,
        scope: Scope,
        facts: ReleaseFacts,
    ) -> Settlement:
        """``settlement`` once the released-cohort ledger has seen it, in the release's transaction.

        The rows a SQL job or a Python job's ``aggregate()`` would release are decided against every
        cohort released before in the scope's lineage (by either kind of job) and against each other;
        the ledger records the released ones. A row it withholds is dropped by the release function
        itself (``ledger_withheld`` of the candidate), so the result, its hash and its report are what
        the operator receives.
        """
        ledger = self.jobs.ledger
        table = ledger_table(candidate)
        if ledger is None or table is None or not isinstance(settlement, Released):
            return settlement
        assert isinstance(candidate, TableResult | PythonOrMockOutcome)  # what ledger_table accepts
        withheld = ledger_withheld(
            table,
            scope,
            lambda lineage, cells, k: ledger.check_and_record(
                session, lineage, cells, min_units=k, job_id=row.id
            ),
        )
        if not withheld:
            return settlement
        return self.decide(replace(candidate, ledger_withheld=withheld), scope=scope, facts=facts)

    def store(
        self,
        session: Session,
        row: JobRow,
        settlement: Settlement,
        *,
        timings: Mapping[str, float],
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """Release or withhold ``row`` as ``settlement`` says, in the caller's transaction."""
        if isinstance(settlement, Withheld):
            row.timings = dict(timings)
            self._withhold(session, row, settlement.payload, required=settlement.required)
        else:
            self._release(session, row, settlement, timings=timings, actor=actor)

    def _release(
        self, session: Session, row: JobRow, released: Released, *, timings: Mapping[str, float], actor: str
    ) -> None:
        """Seal and store the result and release the job (never twice).

        ``report`` is what the operator sees (and the receipt signs); ``audit_report`` adds the counts
        of rows below min_units, which only auditors may read (see SuppressionReport.to_dict).
        """
        jobs = self.jobs
        # Read from the locked row, not the results table (a query, and a flush of what is pending, the
        # more): a job has a result exactly when it was released, and the result's primary key refuses
        # a second one anyway.
        if row.state == JobState.RELEASED.value or row.result_hash is not None:
            raise JobStateConflict(f"job {row.id} already has a released result")
        body: dict[str, Any] = {"columns": released.columns, "rows": released.rows}
        if released.column_types is not None:
            body["types"] = released.column_types
        if released.output is not None:
            body["output"] = dict(released.output)
        payload = json.dumps(body, separators=(",", ":")).encode()
        session.add(
            ResultRow(
                job_id=row.id,
                sealed=seal_data(jobs.results_key, payload, aad=row.id.encode()),
                report=released.report.to_dict(),
                result_hash=released.result_hash,
                row_count=len(released.rows),
                created_at=jobs.clock.now(),
                dp_sealed=None
                if released.dp_record is None
                else seal_data(
                    jobs.results_key,
                    json.dumps(released.dp_record, separators=(",", ":")).encode(),
                    aad=dp_record_aad(row.id),
                ),
            )
        )
        row.result_hash = released.result_hash
        row.timings = dict(timings)
        audit_report = (
            released.audit_report if released.audit_report is not None else released.report.to_dict()
        )
        jobs.advance(
            session,
            row,
            JobState.RELEASED,
            actor=actor,
            reason=released.reason,
            details={
                "result_hash": released.result_hash,
                "rows": len(released.rows),
                "suppression": dict(audit_report),
                "kind": row.kind or "sql",
                "mode": row.mode or "real",
            },
        )
        if jobs.receipts is not None:
            # Same transaction: the receipt signs the audit head that is the job.released event.
            jobs.receipts.issue(
                session,
                row,
                columns=released.columns,
                rows=released.rows,
                result_hash=released.result_hash,
                report=released.report.to_dict(),
                engine=released.engine,
                output=released.output,
            )

    def _withhold(self, session: Session, row: JobRow, payload: WithheldPayload, *, required: int) -> None:
        """Seal the output for review and move the job to ``withheld``."""
        jobs = self.jobs
        flags = sum(1 for f in payload.report.get("findings", []) if f.get("severity") == "flag")
        session.add(
            WithheldRow(
                job_id=row.id,
                sealed=seal_data(jobs.results_key, payload.to_json(), aad=withheld_aad(row.id)),
                report=payload.report,
                required_checkers=required,
                created_at=jobs.clock.now(),
            )
        )
        row.review = {"required": required, "decisions": [], "flags": flags}
        jobs.advance(
            session,
            row,
            JobState.WITHHELD,
            actor=SYSTEM_ACTOR,
            # Not the number of flags: the report is the checkers', and how many flags it raised can
            # depend on one person (``job_views.for_reader``); the audit event keeps it.
            # Nor what the output holds (printed text or not): whether a job printed can depend on one
            # person.
            reason=f"withheld: its output needs review by {required} output checker(s), who read its "
            "automatic disclosure report",
            details={"kind": row.kind, "mode": row.mode, "flags": flags, "required_checkers": required},
        )
