"""Reading jobs: one job, a long-poll until it settles, the listing, a released result, the queue.

Every read by id goes through ``visible_row`` (``services/job_views.py``) and every view through
``for_reader``: what an operator may see of a job is decided in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crypto.profile import unseal_data
from policies import Scope
from policies.dp.budget import lineage_of
from sandbox_api.errors import JobNotReady, NotFound
from sandbox_api.job_types import Kind, Mode
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.job_states import TERMINAL, JobState
from sandbox_api.server.services.job_transitions import SETTLED, JobTransitions
from sandbox_api.server.services.job_views import (
    CommittedJob,
    JobView,
    ResultView,
    for_reader,
    job_view,
    never_charged,
    visible_row,
)
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.scopes import APPROVED, parse_stored
from sandbox_api.server.store.models import JobRow, ResultRow, ScopeVersionRow

# How often a long-poll re-reads its job even without a signal: a change committed by another process
# (a second gateway on the same database, a recovery run) wakes no waiter of this one. The pause grows
# from the first to the last value: this process's own changes arrive as signals, and a few hundred
# open waits must not keep the database busy.
WAIT_RECHECK_S = 0.25
WAIT_RECHECK_MAX_S = 2.0


class JobQueries(JobTransitions):
    """``get``, ``wait``, ``list_jobs``, ``result`` and ``queued_count`` (part of ``JobService``)."""

    def get(self, who: Principal, job_id: str) -> JobView:
        with self.db.read() as session:
            row = visible_row(session, who, job_id)
            return self._with_budget(session, row, for_reader(job_view(row), who))

    def _with_budget(self, session: Session, row: JobRow, view: JobView) -> JobView:
        """``view`` with what the job spent of its owner's DP budget and what is left; as it is for a
        job that was never charged (mock, no DP, or a gateway without DP)."""
        if self.budget is None or never_charged(row):
            return view
        spent = self.budget.of_job(session, job_id=row.id, scope_of=lambda: _governing_scope(session, row))
        return view if spent is None else replace(view, dp_budget=spent.to_dict())

    async def wait(self, who: Principal, job_id: str, *, wait_s: float) -> JobView:
        """The job as soon as it is settled (final or withheld), else as it is after ``wait_s`` seconds.

        A long-poll: ``signals`` hands over the job as committed by a settling transition; without a
        signal the database is re-read, every ``WAIT_RECHECK_S`` at first, then less often. Each read
        is short and runs in a worker thread: no session stays open and no thread is held while waiting.
        Visibility is ``get``'s (another operator's job: NotFound at once).
        """
        if wait_s <= 0:
            return await asyncio.to_thread(self.get, who, job_id)
        with self.long_polls.held(who.name, self.quotas):
            return await self._wait(who, job_id, wait_s=wait_s)

    async def _wait(self, who: Principal, job_id: str, *, wait_s: float) -> JobView:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        arrivals: asyncio.Queue[CommittedJob | None] = asyncio.Queue()

        def wake(committed: CommittedJob | None) -> None:  # runs in the committing thread
            loop.call_soon_threadsafe(arrivals.put_nowait, committed)

        # Subscribed before the first read: a job that settles during it is not missed.
        with self.signals.subscribe(job_id, wake):
            view = await asyncio.to_thread(self.get, who, job_id)
            pause = WAIT_RECHECK_S
            while JobState(view.state) not in SETTLED and (remaining := deadline - loop.time()) > 0:
                committed = None
                with contextlib.suppress(TimeoutError):
                    committed = await asyncio.wait_for(arrivals.get(), min(remaining, pause))
                if committed is not None and not committed.charged:
                    # Never charged: the committed view is the whole answer, no read needed.
                    view = for_reader(committed.view, who)
                elif committed is not None:
                    # The committed view carries no budget: one short read adds it.
                    view = await asyncio.to_thread(self._budgeted, for_reader(committed.view, who))
                else:
                    view = await asyncio.to_thread(self.get, who, job_id)
                pause = min(pause * 2, WAIT_RECHECK_MAX_S)
            return view

    def _budgeted(self, view: JobView) -> JobView:
        if self.budget is None:
            return view
        with self.db.read() as session:
            row = session.get(JobRow, view.job_id)
            return view if row is None else self._with_budget(session, row, view)

    def list_jobs(
        self, who: Principal, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobView]:
        with self.db.read() as session:
            query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
            if who.role is Role.OPERATOR:
                query = query.where(JobRow.owner == who.name)
            if state is not None:
                query = query.where(JobRow.state == state)
            return [for_reader(job_view(row), who) for row in session.execute(query).scalars()]

    def result(self, who: Principal, job_id: str) -> ResultView:
        with self.db.read() as session:
            row = visible_row(session, who, job_id)
            if row.state != JobState.RELEASED.value:
                raise JobNotReady(
                    f"job {job_id} is {row.state}; a result exists only once it is released"
                    + ("" if row.state not in TERMINAL else f" ({row.reason})")
                )
            view = stored_result(session, row, results_key=self.results_key, receipts=self.receipts)
        self.audit.record(event="job.result.read", actor=who.name, details={"job": job_id})
        return view

    def queued_count(self) -> int:
        with self.db.read() as session:
            return int(
                session.execute(
                    select(func.count()).select_from(JobRow).where(JobRow.state == JobState.QUEUED.value)
                ).scalar_one()
            )


def stored_result(
    session: Session, row: JobRow, *, results_key: bytes, receipts: ReceiptService | None
) -> ResultView:
    """The released result of ``row`` (a released job), unsealed, with its receipt.

    The one place that opens a stored result: the owner's read above and the public open-data
    catalog (services/open_data.py) answer with the same view of the same sealed row.
    """
    stored = session.get(ResultRow, row.id)
    if stored is None:
        raise NotFound(f"job {row.id} has no stored result")
    payload = json.loads(unseal_data(results_key, stored.sealed, aad=row.id.encode()))
    return ResultView(
        job_id=row.id,
        scope=row.scope,
        scope_version=row.scope_version,
        dataset_versions=dict(row.dataset_versions),
        columns=list(payload["columns"]),
        rows=list(payload["rows"]),
        row_count=stored.row_count,
        result_hash=stored.result_hash,
        report=dict(stored.report),
        kind=Kind(row.kind or Kind.SQL),
        mode=Mode(row.mode or Mode.REAL),
        output=payload.get("output"),
        column_types=payload.get("types"),
        receipt=None if receipts is None else receipts.load(session, row.id),
    )


def _governing_scope(session: Session, row: JobRow) -> Scope | None:
    """The scope version whose budget governs ``row``'s lineage now: the newest approved version of
    the same name and lineage (a new version may have changed ``budget``), else the job's own version;
    None when neither has differential privacy."""
    own = session.execute(
        select(ScopeVersionRow.document).where(
            ScopeVersionRow.name == row.scope, ScopeVersionRow.version_id == row.scope_version
        )
    ).scalar_one_or_none()
    newest = session.execute(
        select(ScopeVersionRow.document)
        .where(ScopeVersionRow.name == row.scope, ScopeVersionRow.state == APPROVED)
        .order_by(ScopeVersionRow.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    job_scope = None if own is None else parse_stored(own)
    for document in (newest, own):
        if document is None:
            continue
        scope = parse_stored(document)
        same_lineage = job_scope is None or lineage_of(scope) == lineage_of(job_scope)
        if scope.disclosure.dp is not None and same_lineage:
            return scope
    return None
