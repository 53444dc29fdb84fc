"""The durable job runner: worker threads that take queued jobs from the database and run them.

The database is the queue, so a restart loses nothing: queued jobs simply wait for a worker. Jobs that
were running when the gateway stopped are re-queued once (nothing was released, the attempt counter
grows) or failed with the reason; a job in its output check is failed, since a result is stored and
released in one transaction and cannot be released twice.

Every kind of job takes the same path (``_run``): claim, build the spec, execute, settle. What differs
between SQL, Python and mock jobs is a strategy (``services/job_kinds.py``); what a result releases is
decided by the one release function (``services/release.py``) before the write transaction, and the
job stays ``running`` in the database meanwhile: ``checking`` and ``released`` (or ``withheld``) are
committed together, so a stop during the check finds it running (re-queued, nothing stored).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from executors.base import Executor, JobSpec, Limits
from executors.crossdomain.placed import Placing
from executors.errors import ExecutionCancelled, ExecutionError
from executors.tracing import current_trace_context
from policies import Scope
from policies.errors import PolicyError
from sandbox_api.errors import ScopeExpired, ServiceError
from sandbox_api.server.observability.tracing import Tracing
from sandbox_api.server.services.audit import SYSTEM_ACTOR
from sandbox_api.server.services.job_kinds import StoredJob, kind_of
from sandbox_api.server.services.job_specs import JobSpecs
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.quotas import QueuedJob, next_job
from sandbox_api.server.services.release import Candidate, Settlement
from sandbox_api.server.services.release_facts import marked_current
from sandbox_api.server.services.settlement import Settlements
from sandbox_api.server.store.db import database_gone
from sandbox_api.server.store.leases import JobLeases, Lease
from sandbox_api.server.store.models import JobRow

log = logging.getLogger(__name__)

#: A claim looks at the oldest queued jobs up to this many (the queue limit is far below it) and tries
#: again this often when another gateway took the chosen job meanwhile.
CLAIM_WINDOW = 2000
CLAIM_TRIES = 3
ACTIVE = (JobState.RUNNING.value, JobState.CHECKING.value)
WAITING = (JobState.SUBMITTED.value, JobState.QUEUED.value)


@dataclass(frozen=True)
class Decided:
    """A job's result as the release function judged it, before the ledger and the store."""

    candidate: Candidate
    settlement: Settlement
    scope: Scope
    #: A cross-domain job's parts, one per domain (``ResultTable.parts``), each audited on its own.
    parts: tuple[Mapping[str, object], ...] = ()


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
        tracing: Tracing | None = None,
        count_groups_below_k: bool = False,
    ) -> None:
        """``tracing``: where a job's spans go (``observability/tracing.py``); None: not traced."""
        self._jobs = jobs
        self._tracing = tracing
        # Cross-domain jobs run as rounds, one domain each; cancelling one stops its running round.
        self._executor = Placing(executor)
        self._base_executor = executor
        self._specs = JobSpecs(
            catalog=jobs.catalog,
            pseudonym_master=pseudonym_master,
            limits=limits,
            ledger=jobs.ledger,
            count_groups_below_k=count_groups_below_k,
        )
        self._settlements = Settlements(jobs)
        self._leases = JobLeases(jobs.db)
        self._max_concurrent = max_concurrent
        self._max_attempts = max_attempts
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._outage = threading.Event()  # set by a lost database connection (_note_outage)
        self._claiming = threading.Lock()
        # The jobs this gateway's threads are running: their leases die with a lost connection, but
        # they are not orphans, and recovering after an outage must not queue them a second time.
        self._in_hand: set[str] = set()
        self._in_hand_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def executor(self) -> Executor:
        """The executor jobs run on (readiness asks it whether it can take jobs)."""
        return self._base_executor

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
        # A thread still inside the executor past its time keeps its lease connection out of the pool,
        # where the database's disposal would not close it: drop it here (its lock goes with it).
        self._leases.abandon_all()

    def recover(self, *, cause: str = "a gateway restart") -> Recovery:
        """Make the job table consistent after a stop (clean or not), or after ``cause``."""
        requeued: list[str] = []
        failed: list[str] = []
        jobs = self._jobs
        with jobs.db.write() as session:
            rows = session.execute(
                select(JobRow).where(JobRow.state.in_([JobState.RUNNING.value, JobState.CHECKING.value]))
            ).scalars()
            for row in rows:
                with self._in_hand_lock:
                    running_here = row.id in self._in_hand
                if running_here or not self._leases.orphaned(session, row.id):
                    continue  # this gateway, or another on the same database, is running it
                if row.state == JobState.RUNNING.value and row.cancel_requested:
                    jobs.advance(session, row, JobState.CANCELLED, actor=SYSTEM_ACTOR, reason="cancelled")
                    failed.append(row.id)
                elif row.state == JobState.RUNNING.value and row.attempts < self._max_attempts:
                    jobs.advance(
                        session,
                        row,
                        JobState.QUEUED,
                        actor=SYSTEM_ACTOR,
                        reason=f"interrupted by {cause}; re-queued (attempt {row.attempts} "
                        f"of {self._max_attempts} used)",
                    )
                    requeued.append(row.id)
                else:
                    jobs.advance(
                        session,
                        row,
                        JobState.FAILED,
                        actor=SYSTEM_ACTOR,
                        reason=f"interrupted by {cause} while {row.state} after {row.attempts} "
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
                self._recover_after_outage()
                # One claim at a time per gateway: a submit wakes every idle thread, and racing them
                # for one job cost each loser a full claim beside the winner's; in turn, a loser's
                # claim is one query that finds the queue empty.
                with self._claiming:
                    claimed = self._claim()
            except Exception as exc:  # a database hiccup must not kill the worker
                self._note_outage(exc)
                log.exception("claiming a job failed")
                claimed = None
            if claimed is None:
                self._jobs.wake.wait(self._poll_s)
                continue
            job, lease = claimed
            with self._in_hand_lock:
                self._in_hand.add(job.job_id)
            try:
                with lease:  # held until the job is settled, so no other gateway takes it meanwhile
                    self._run_safely(job)
            finally:
                with self._in_hand_lock:
                    self._in_hand.discard(job.job_id)

    def _run_safely(self, job: StoredJob) -> None:
        """``_run``, with an unexpected error recorded as the job's failure instead of killing the worker."""
        try:
            self._run(job)
        except Exception as exc:
            self._note_outage(exc)
            # Only the error's type: its message or traceback could quote a cell of the result
            # before the output check removed it, and logs are files.
            log.error("job %s failed unexpectedly: %s", job.job_id, type(exc).__name__)
            try:
                self._finish(job.job_id, JobState.FAILED, reason=f"internal error ({type(exc).__name__})")
            except Exception as again:  # the worker thread must outlive a database hiccup
                log.error("recording the failure of job %s failed: %s", job.job_id, type(again).__name__)

    def _note_outage(self, exc: BaseException) -> None:
        """A lost PostgreSQL connection (the primary died, a standby is being promoted): jobs this
        gateway was running may be left ``running`` with their leases gone, so recover once the
        database answers again, as a restart would, without restarting. Not on SQLite, where no lease
        tells a job another thread of this gateway runs from an orphan."""
        if database_gone(exc) and not self._jobs.db.is_sqlite:
            self._outage.set()

    def _recover_after_outage(self) -> None:
        if not self._outage.is_set():
            return
        self._outage.clear()
        try:
            recovery = self.recover(cause="a lost database connection")
        except BaseException:
            self._outage.set()  # still down: the next loop tries again
            raise
        log.warning(
            "database back after an outage: %d job(s) re-queued, %d failed",
            len(recovery.requeued),
            len(recovery.failed),
        )

    def _claim(self) -> tuple[StoredJob, Lease] | None:
        """The next job, chosen fairly (``services/quotas.next_job``: never an owner already at their
        concurrency quota, and round-robin by owner, oldest job first), moved to running."""
        taken: list[Lease] = []
        try:
            return self._claim_one(taken)
        except BaseException:
            # The claim rolled back (its commit included): the job stays queued, so its lease goes
            # now, or its connection would stay checked out, locking the job, until shutdown.
            for lease in taken:
                lease.release()
            raise

    def _claim_one(self, taken: list[Lease]) -> tuple[StoredJob, Lease] | None:
        jobs = self._jobs
        with jobs.db.write() as session:
            row = None
            for _ in range(CLAIM_TRIES):
                queued, running, last_served = _queue_and_owners(session)
                if not queued:
                    return None  # the idle poll
                choice = next_job(queued, running=running, last_served=last_served, limits=jobs.quotas)
                if choice is None:
                    return None
                # Locked only if still queued: another gateway on the same database may have taken it.
                row = session.execute(
                    select(JobRow)
                    .where(JobRow.id == choice.job_id, JobRow.state == JobState.QUEUED.value)
                    .with_for_update(skip_locked=True)
                ).scalar_one_or_none()
                if row is not None:
                    break
            if row is None:
                return None
            # Held before the claim commits: no other gateway ever sees it running without its lease.
            lease = self._leases.take(row.id)
            taken.append(lease)
            row.attempts += 1
            jobs.advance(
                session,
                row,
                JobState.RUNNING,
                actor=SYSTEM_ACTOR,
                reason="running",
                details={"attempt": row.attempts},
            )
            # Released under the rules of now, whatever it was submitted under (queued across an
            # upgrade): the marker tells its replay which rules to reproduce.
            row.release_facts = marked_current(row.release_facts)
            claimed = StoredJob.of(row)
        return claimed, lease

    def _run(self, job: StoredJob) -> None:
        """``_run_job`` inside the job's ``job.run`` span (in the job's own trace: ``job_context``)."""
        if self._tracing is None:
            self._run_job(job)
            return
        with self._tracing.tracer.start_as_current_span(
            "job.run",
            context=self._tracing.job_context(job.job_id),
            attributes={
                "sandbox.job_id": job.job_id,
                "sandbox.job.kind": job.kind.value,
                "sandbox.job.attempt": job.attempt,
            },
        ):
            self._run_job(job)

    def _run_job(self, job: StoredJob) -> None:
        """Claimed -> spec -> execute -> release decision -> settled (or failed with the reason)."""
        started = time.perf_counter()
        kind = kind_of(job.kind, job.mode)
        try:
            scope = self._jobs.scopes.active(job.scope, version_id=job.scope_version).scope
            spec: JobSpec = kind.spec(job, scope=scope, specs=self._specs)
            # The trace context crosses to the executor inside the spec, as it would to another process.
            spec = replace(spec, trace_context=current_trace_context())
            result = self._executor.run(spec)  # a cross-domain job: rounds, each domain on its own
            executed = time.perf_counter()
            candidate = kind.candidate(job, result)
            settlement = self._settlements.decide(candidate, scope=scope, facts=job.facts)
        except (ServiceError, PolicyError, ExecutionError) as exc:
            self._fail(job.job_id, exc)
            return
        timings = {
            **{k: float(v) for k, v in result.timings.items()},
            "execute_s": executed - started,
            "check_s": time.perf_counter() - executed,
        }
        self._settle(job, Decided(candidate, settlement, scope, parts=result.parts), timings=timings)

    def _settle(self, job: StoredJob, decided: Decided, *, timings: dict[str, float]) -> None:
        """Checking and released (or withheld) in one transaction, decided before it: the write lock is
        held only for the writes and the released-cohort ledger's check, which must see every release
        of the scope's lineage in order. The job was still running meanwhile: a cancel that arrived is
        honoured here, and a crash before this commit leaves it running, so recovery re-queues or fails
        it with nothing stored."""
        with self._jobs.db.write() as session:
            # Locked (FOR UPDATE on PostgreSQL): a cancel or another gateway's recovery waits for this.
            row = session.get(JobRow, job.job_id, with_for_update=True)
            if row is None or row.state != JobState.RUNNING.value or row.attempts != job.attempt:
                return
            for part in decided.parts:
                # One event per domain: what ran there, on which inputs (their content hashes), and
                # how many bytes of protocol messages it sent to whom.
                self._jobs.audit.append(
                    session,
                    event="job.domain_part",
                    actor=f"domain:{part['domain']}",
                    details={"job_id": job.job_id, "attempt": job.attempt, **part},
                )
            if not self._enter_check(session, row, attempt=job.attempt):
                return
            settlement = self._settlements.against_ledger(
                session, row, decided.candidate, decided.settlement, scope=decided.scope, facts=job.facts
            )
            self._settlements.store(session, row, settlement, timings=timings)

    def _fail(self, job_id: str, exc: ServiceError | PolicyError | ExecutionError) -> None:
        """End a job that could not run or be checked, with the error's reason (no result exists)."""
        if isinstance(exc, ScopeExpired):
            self._finish(job_id, JobState.EXPIRED, reason=exc.detail)
        elif isinstance(exc, ExecutionCancelled):
            self._finish(job_id, JobState.CANCELLED, reason=exc.detail)
        elif isinstance(exc, ServiceError):
            self._finish(job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}")
        else:
            self._finish(job_id, JobState.FAILED, reason=f"{exc.code}: {exc.detail}", code=exc.code)

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
            row = session.get(JobRow, job_id, with_for_update=True)
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


def _queue_and_owners(session: Session) -> tuple[list[QueuedJob], dict[str, int], dict[str, Any]]:
    """The oldest queued jobs (up to ``CLAIM_WINDOW``) and, per owner waiting among them, how many of
    their jobs run now and when one of theirs was last served (the newest ``updated_at`` of a job past
    the queue; an owner with none is absent from that mapping).

    One query, one round trip on a claim's path (the queue, then its owners, were two): the window
    joined to its owners' aggregates (``FILTER``); with the queue empty it finds nothing, as the idle
    poll did.
    """
    window = (
        select(JobRow.id, JobRow.owner, JobRow.created_at)
        .where(JobRow.state == JobState.QUEUED.value)
        .order_by(JobRow.created_at, JobRow.id)
        .limit(CLAIM_WINDOW)
        .cte("waiting")  # named once, read twice: the queue is scanned once
    )
    served = JobRow.state.notin_(WAITING)
    owners = (
        select(
            JobRow.owner.label("owner"),
            func.count().filter(JobRow.state.in_(ACTIVE)).label("running"),
            func.max(JobRow.updated_at).filter(served).label("last_served"),
        )
        .where(JobRow.owner.in_(select(window.c.owner)), served)
        .group_by(JobRow.owner)
        .subquery("waiting_owners")
    )
    rows = session.execute(
        select(window.c.id, window.c.owner, window.c.created_at, owners.c.running, owners.c.last_served)
        .join_from(window, owners, owners.c.owner == window.c.owner, isouter=True)
        .order_by(window.c.created_at, window.c.id)
    ).all()
    queued = [QueuedJob(job_id, owner, created_at) for job_id, owner, created_at, _, _ in rows]
    running: dict[str, int] = {}
    last_served: dict[str, Any] = {}
    for _, owner, _, count, latest in rows:
        if count:
            running[str(owner)] = int(count)
        if latest is not None:
            last_served[str(owner)] = latest
    return queued, running, last_served
