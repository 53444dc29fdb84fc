"""Cancelling jobs: one job at its owner's (or an admin's) request, or every job of a principal being
disabled. Both go through ``advance`` (which gives a differential-privacy charge back); a running job
is only asked to stop, and the runner settles it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sandbox_api.errors import Conflict
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.job_transitions import JobTransitions
from sandbox_api.server.services.job_views import JobView, for_reader, job_view, visible_row
from sandbox_api.server.store.models import JobRow


@dataclass(frozen=True)
class DisabledOwnerJobs:
    """What disabling a principal did to its jobs: ids cancelled at once, and running ids told to stop."""

    cancelled: tuple[str, ...]
    stopping: tuple[str, ...]


class JobCancellation(JobTransitions):
    """``cancel`` and ``settle_for_disabled`` (part of ``JobService``)."""

    def cancel(self, who: Principal, job_id: str) -> tuple[JobView, bool]:
        """Cancel a queued job at once; ask the runner to stop a running one (second value: running)."""
        with self.db.write() as session:
            row = visible_row(session, who, job_id, for_update=True)
            state = JobState(row.state)
            if state in {JobState.QUEUED, JobState.SUBMITTED, JobState.WITHHELD}:
                self.advance(
                    session, row, JobState.CANCELLED, actor=who.name, reason=f"cancelled by {who.name}"
                )
                return for_reader(job_view(row), who), False
            if state is JobState.RUNNING:
                if not row.cancel_requested:
                    row.cancel_requested = True
                    self.audit.append(
                        session, event="job.cancel.requested", actor=who.name, details={"job": job_id}
                    )
                return for_reader(job_view(row), who), True
            if state is JobState.CANCELLED:
                return for_reader(job_view(row), who), False
            raise Conflict(f"job {job_id} is {state.value}; only queued or running jobs can be cancelled")

    def settle_for_disabled(self, session: Session, *, owner: str, actor: str) -> DisabledOwnerJobs:
        """The jobs of a principal being disabled, in the caller's transaction.

        Queued (and submitted) jobs are cancelled: nobody should spend the cluster, or a DP budget
        (refunded by ``advance``), on work its owner may no longer collect. Running jobs are asked to
        stop, as an operator's own cancel would (the caller tells the runner once this commits). Withheld
        jobs stay with the output checkers: their
        decision is still owed and is audited, and the owner cannot read a release while disabled.
        """
        cancelled: list[str] = []
        running: list[str] = []
        rows = session.execute(
            select(JobRow)
            .where(
                JobRow.owner == owner,
                JobRow.state.in_([JobState.QUEUED.value, JobState.SUBMITTED.value, JobState.RUNNING.value]),
            )
            .with_for_update()
        ).scalars()
        reason = f"owner {owner} was disabled by {actor}"
        for row in rows:
            if JobState(row.state) is JobState.RUNNING:
                if not row.cancel_requested:
                    row.cancel_requested = True
                    self.audit.append(
                        session,
                        event="job.cancel.requested",
                        actor=actor,
                        details={"job": row.id, "reason": reason},
                    )
                running.append(row.id)
            elif self.advance(session, row, JobState.CANCELLED, actor=actor, reason=reason):
                cancelled.append(row.id)
        return DisabledOwnerJobs(cancelled=tuple(cancelled), stopping=tuple(running))
