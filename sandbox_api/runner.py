"""The durable job runner: worker threads that take queued jobs from the database and run them.

The database is the queue, so a restart loses nothing: queued jobs simply wait for a worker. Jobs that
were running when the gateway stopped are re-queued once (nothing was released, the attempt counter
grows) or failed with the reason; a job in its output check is failed, since a result is stored and
released in one transaction and cannot be released twice.

A SQL job stays ``running`` in the database while its output is checked: ``checking`` and ``released``
are committed together, so a stop during the check finds it running (re-queued, nothing stored). Python
and mock jobs commit ``checking`` first, then settle (``services/program_runs.py``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.pseudonym import derive_key
from executors.base import Executor, JobSpec, Limits
from executors.errors import ExecutionCancelled, ExecutionError
from executors.lifecycle import JobState
from policies import check_output, result_hash
from policies.errors import PolicyError
from sandbox_api.errors import NotFound, ScopeExpired, ScopeNotActive, ServiceError
from sandbox_api.services.audit import SYSTEM_ACTOR
from sandbox_api.services.jobs import JobService
from sandbox_api.services.program_runs import ProgramRuns
from sandbox_api.store.models import JobRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    job_id: str
    scope: str
    scope_version: str
    sql: str
    inputs: list[dict[str, str]]
    dataset_versions: dict[str, str]
    uses_keyed_hash: bool
    attempt: int
    queued_at: float
    kind: str = "sql"  # sql | python
    mode: str = "real"  # real | mock
    code: str = ""  # a Python job's code
    source_sql: str = ""  # the operator's SQL (a mock SQL job runs it as written, on the twins)

    @property
    def is_program(self) -> bool:
        """A Python job or a mock job: run through ``services/program_runs.py``."""
        return self.kind != "sql" or self.mode != "real"


@dataclass(frozen=True)
class Recovery:
    requeued: list[str]
    failed: list[str]
    queued: int


class JobRunner:
    """``max_concurrent`` threads, each running one job at a time through the executor."""

    def __init__(
        self,
        *,
        jobs: JobService,
        executor: Executor,
        pseudonym_master: bytes,
        limits: Limits,
        max_concurrent: int,
        max_attempts: int,
        poll_s: float = 1.0,
    ) -> None:
        self._jobs = jobs
        self._executor = executor
        self._pseudonym_master = pseudonym_master
        self._limits = limits
        self._max_concurrent = max_concurrent
        self._max_attempts = max_attempts
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Recovery:
        recovery = self.recover()
        for index in range(self._max_concurrent):
            thread = threading.Thread(target=self._loop, name=f"sandbox-job-runner-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._jobs.wake.set()
        return recovery

    def stop(self, *, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._jobs.wake.set()
        self._executor.close()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def recover(self) -> Recovery:
        """Make the job table consistent after a stop (clean or not)."""
        requeued: list[str] = []
        failed: list[str] = []
        jobs = self._jobs
        with jobs.db.write() as session:
            rows = session.execute(
                select(JobRow).where(JobRow.state.in_([JobState.RUNNING.value, JobState.CHECKING.value]))
            ).scalars()
            for row in rows:
                if row.state == JobState.RUNNING.value and row.cancel_requested:
                    jobs.advance(session, row, JobState.CANCELLED, actor=SYSTEM_ACTOR, reason="cancelled")
                    failed.append(row.id)
                elif row.state == JobState.RUNNING.value and row.attempts < self._max_attempts:
                    jobs.advance(
                        session,
                        row,
                        JobState.QUEUED,
                        actor=SYSTEM_ACTOR,
                        reason=f"interrupted by a gateway restart; re-queued (attempt {row.attempts} "
                        f"of {self._max_attempts} used)",
                    )
                    requeued.append(row.id)
                else:
                    jobs.advance(
                        session,
                        row,
                        JobState.FAILED,
                        actor=SYSTEM_ACTOR,
                        reason=f"interrupted by a gateway restart while {row.state} after {row.attempts} "
                        "attempt(s); nothing was released, submit it again",
                    )
                    failed.append(row.id)
        return Recovery(requeued=requeued, failed=failed, queued=jobs.queued_count())

    def cancel(self, job_id: str) -> bool:
        return self._executor.cancel(job_id)

    # --- the worker loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            # Clear before looking, so a submit that lands while we look is not lost.
            self._jobs.wake.clear()
            try:
                claim = self._claim()
            except Exception:  # a database hiccup must not kill the worker
                log.exception("claiming a job failed")
                claim = None
            if claim is None:
                self._jobs.wake.wait(self._poll_s)
                continue
            try:
                self._run(claim)
            except Exception as exc:
                # Only the error's type: its message or traceback could quote a cell of the result
                # before the output check removed it, and logs are files.
                log.error("job %s failed unexpectedly: %s", claim.job_id, type(exc).__name__)
                try:
                    self._finish(
                        claim.job_id, JobState.FAILED, reason=f"internal error ({type(exc).__name__})"
                    )
                except Exception as again:  # the worker thread must outlive a database hiccup
                    log.error(
                        "recording the failure of job %s failed: %s", claim.job_id, type(again).__name__
                    )

    def _claim(self) -> Claim | None:
        jobs = self._jobs
        with jobs.db.write() as session:
            row = session.execute(
                select(JobRow)
                .where(JobRow.state == JobState.QUEUED.value)
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if row is None:
                return None
            row.attempts += 1
            queued_at = row.updated_at
            jobs.advance(
                session,
                row,
                JobState.RUNNING,
                actor=SYSTEM_ACTOR,
                reason="running",
                details={"attempt": row.attempts},
            )
            return Claim(
                job_id=row.id,
                scope=row.scope,
                scope_version=row.scope_version,
                sql=row.rewritten_sql or "",
                inputs=list(row.inputs),
                dataset_versions=dict(row.dataset_versions),
                uses_keyed_hash=row.uses_keyed_hash,
                attempt=row.attempts,
                queued_at=queued_at.timestamp(),
                kind=row.kind or "sql",
                mode=row.mode or "real",
                code=row.code or "",
                source_sql=row.sql,
            )

    def _run(self, claim: Claim) -> None:
        started = time.perf_counter()
        jobs = self._jobs
        try:
            active = jobs.scopes.active(claim.scope, version_id=claim.scope_version)
        except ScopeExpired as exc:
            self._finish(claim.job_id, JobState.EXPIRED, reason=exc.detail)
            return
        except (ScopeNotActive, NotFound) as exc:
            self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}")
            return
        try:
            tables = tuple(
                jobs.catalog.table_input(
                    dataset=t["dataset"],
                    version_id=claim.dataset_versions[t["dataset"]],
                    table=t["table"],
                    sql_name=t["sql_name"],
                )
                for t in claim.inputs
            )
        except ServiceError as exc:
            self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}")
            return
        key = derive_key(self._pseudonym_master, "scope:" + claim.scope) if claim.uses_keyed_hash else None
        spec = JobSpec(
            job_id=claim.job_id, sql=claim.sql, tables=tables, keyed_hash_key=key, limits=self._limits
        )
        programs = ProgramRuns(jobs=jobs, pseudonym_master=self._pseudonym_master, limits=self._limits)
        if claim.is_program:
            try:
                spec = programs.spec(
                    job_id=claim.job_id,
                    kind=claim.kind,
                    mode=claim.mode,
                    code=claim.code,
                    sql=claim.source_sql,
                    inputs=claim.inputs,
                    tables=tables,
                    keyed_hash_key=key,
                    scope=active.scope,
                    dataset_versions=claim.dataset_versions,
                )
            except (ServiceError, PolicyError) as exc:
                self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}")
                return
        try:
            result = self._executor.run(spec)
        except ExecutionCancelled as exc:
            self._finish(claim.job_id, JobState.CANCELLED, reason=exc.detail)
            return
        except ExecutionError as exc:
            self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}", code=exc.code)
            return
        executed = time.perf_counter()
        if claim.is_program:
            if not self._to_checking(claim.job_id, attempt=claim.attempt):
                return
            try:
                timings = {**result.timings, "execute_s": executed - started}
                programs.settle(claim.job_id, result, scope=active.scope, timings=timings)
            except (PolicyError, ExecutionError) as exc:
                self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}", code=exc.code)
            return
        try:
            released = check_output(result.to_pandas(), active.scope.disclosure)
        except PolicyError as exc:
            self._finish(claim.job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}", code=exc.code)
            return
        table = released.table
        payload = json.loads(table.to_json(orient="split", index=False, date_format="iso"))
        # Hashed before the write transaction, which then holds the database's write lock only for the
        # writes themselves.
        canonical_hash = result_hash(table)
        timings = {
            **{k: float(v) for k, v in result.timings.items()},
            "execute_s": executed - started,
            "check_s": time.perf_counter() - executed,
        }
        # The job is still running (in the database) during the check above: a cancel that arrives in
        # the meantime is honoured below, and a crash before this commit leaves it running, so recovery
        # re-queues or fails it with nothing stored. Checking and release then commit together: one
        # transaction instead of two, and the audit trail still reads checking, then released.
        with jobs.db.write() as session:
            row = session.get(JobRow, claim.job_id)
            if row is None or not self._enter_check(session, row, attempt=claim.attempt):
                return
            jobs.store_release(
                session,
                row,
                columns=[str(c) for c in payload["columns"]],
                rows=_rows(payload["data"]),
                result_hash=canonical_hash,
                report=released.report.to_dict(),
                audit_report=released.report.audit_dict(),
                timings=timings,
                engine=dict(result.engine),
            )

    def _to_checking(self, job_id: str, *, attempt: int) -> bool:
        """Commit running -> checking on its own (Python and mock jobs, settled by ``ProgramRuns``)."""
        with self._jobs.db.write() as session:
            row = session.get(JobRow, job_id)
            return row is not None and self._enter_check(session, row, attempt=attempt)

    def _enter_check(self, session: Session, row: JobRow, *, attempt: int) -> bool:
        """Move a running job to checking in ``session``; cancelled instead if a cancel was asked for.

        Only the attempt this worker claimed: if the job was re-queued and claimed again meanwhile (a
        recovery by another gateway on the same database), that attempt's worker settles it.
        """
        jobs = self._jobs
        if row.state != JobState.RUNNING.value or row.attempts != attempt:
            return False
        if row.cancel_requested:
            jobs.advance(session, row, JobState.CANCELLED, actor=SYSTEM_ACTOR, reason="cancelled")
            return False
        jobs.advance(session, row, JobState.CHECKING, actor=SYSTEM_ACTOR, reason="output check")
        return True

    def _finish(self, job_id: str, to: JobState, *, reason: str, code: str | None = None) -> None:
        jobs = self._jobs
        with jobs.db.write() as session:
            row = session.get(JobRow, job_id)
            if row is None or row.state in {JobState.CANCELLED.value, to.value}:
                return
            if row.cancel_requested and to is JobState.FAILED:
                to, reason = JobState.CANCELLED, "cancelled"
            jobs.advance(
                session,
                row,
                to,
                actor=SYSTEM_ACTOR,
                reason=reason,
                details={} if code is None else {"code": code},
            )


def _rows(data: Any) -> list[list[Any]]:
    return [list(row) for row in data]
