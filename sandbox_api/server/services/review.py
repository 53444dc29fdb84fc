"""The airlock: outputs automated checks cannot clear wait here for output checkers.

A withheld job's output (the object's plain-data summary, any printed output, an aggregate table that
came with printed output) is sealed like a result, under the results key with the job id as
associated data, and only output checkers read it before release; the operator sees the state and
how many checkers must still decide, never the content. Rules:

* the checker is never the job's author;
* a scope may require two independent checkers (``review: {checkers: 2}``): the output is released
  once that many different checkers released it; any one denial ends the review (denied);
* each checker decides a job at most once, always with a reason for a denial;
* every view and every decision is an audit event, and state changes go through ``JobService.advance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crypto.profile import unseal_data
from policies import Scope
from sandbox_api.clock import iso
from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotFound
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.release import Reviewed
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.services.scopes import parse_stored
from sandbox_api.server.services.settlement import Settlements, withheld_aad
from sandbox_api.server.services.withheld import WithheldPayload
from sandbox_api.server.store.models import JobRow, ReviewDecisionRow, ScopeVersionRow, WithheldRow

Decision = Literal["release", "deny"]


@dataclass(frozen=True)
class ReviewView:
    job_id: str
    owner: str
    scope: str
    scope_version: str
    kind: Kind
    mode: Mode
    state: str
    reason: str
    code: str | None
    sql: str
    required_checkers: int
    decisions: list[dict[str, Any]]
    report: dict[str, Any]
    created_at: str
    withheld_at: str
    output: dict[str, Any] | None = None  # only in the detail view: {table, summary, printed}


@dataclass(frozen=True)
class ReviewService:
    jobs: JobService

    def list_pending(self, who: Principal) -> list[ReviewView]:
        """Withheld jobs, oldest first, without their content (the checker's own jobs excluded)."""
        with self.jobs.db.read() as session:
            rows = session.execute(
                select(JobRow, WithheldRow)
                .join(WithheldRow, WithheldRow.job_id == JobRow.id)
                .where(JobRow.state == JobState.WITHHELD.value)
                .order_by(WithheldRow.created_at, JobRow.id)
            ).all()
            return [self._view(job, held, None) for job, held in rows if job.owner != who.name]

    def get(self, who: Principal, job_id: str) -> ReviewView:
        """One withheld (or decided) job with its output and disclosure report; audited as a view."""
        self._refuse_author(who, job_id, action="review.view")
        with self.jobs.db.read() as session:
            job, held = self._load(session, job_id)
            payload = WithheldPayload.from_json(
                unseal_data(self.jobs.results_key, held.sealed, aad=withheld_aad(job_id))
            )
            view = self._view(
                job, held, {"table": payload.table, "summary": payload.summary, "printed": payload.printed}
            )
        self.jobs.audit.record(event="review.viewed", actor=who.name, details={"job": job_id})
        return view

    def decide(self, who: Principal, job_id: str, *, decision: Decision, reason: str) -> ReviewView:
        """Record ``who``'s decision; release or deny the job when it completes the review."""
        if decision == "deny" and not reason.strip():
            raise InvalidInput("a denial needs a reason the operator can act on")
        jobs = self.jobs
        self._refuse_author(who, job_id, action=f"review.{decision}")
        try:
            with jobs.db.write() as session:
                job, held = self._load(session, job_id, for_update=True)
                if job.owner == who.name:  # re-checked under the write lock
                    raise Forbidden(f"{who.name} wrote job {job_id}; it needs another output checker")
                if job.state != JobState.WITHHELD.value:
                    raise Conflict(f"job {job_id} is {job.state}; only withheld jobs are reviewed")
                earlier = (
                    session.execute(select(ReviewDecisionRow).where(ReviewDecisionRow.job_id == job_id))
                    .scalars()
                    .all()
                )
                if any(d.checker == who.name for d in earlier):
                    raise Conflict(
                        f"{who.name} already decided on job {job_id}; a second checker must be someone else"
                    )
                now = jobs.clock.now()
                session.add(
                    ReviewDecisionRow(
                        job_id=job_id, checker=who.name, decision=decision, reason=reason, created_at=now
                    )
                )
                session.flush()
                decisions = [
                    *(job.review or {}).get("decisions", []),
                    {"checker": who.name, "decision": decision, "reason": reason, "at": iso(now)},
                ]
                job.review = {
                    **(job.review or {}),
                    "required": held.required_checkers,
                    "decisions": decisions,
                }
                releases = [d for d in decisions if d["decision"] == "release"]
                jobs.audit.append(
                    session,
                    event="review.decision.recorded",
                    actor=who.name,
                    details={
                        "job": job_id,
                        "decision": decision,
                        "reason": reason,
                        "releases": len(releases),
                        "required_checkers": held.required_checkers,
                    },
                )
                if decision == "deny":
                    jobs.advance(
                        session,
                        job,
                        JobState.DENIED,
                        actor=who.name,
                        reason=f"denied by output checker {who.name}: {reason}",
                        details={"kind": job.kind, "mode": job.mode},
                    )
                elif len(releases) >= held.required_checkers:
                    payload = WithheldPayload.from_json(
                        unseal_data(jobs.results_key, held.sealed, aad=withheld_aad(job_id))
                    )
                    settlements = Settlements(jobs)
                    released = settlements.decide(
                        Reviewed(payload, tuple(d["checker"] for d in releases), reason),
                        scope=self._scope_of(session, job),
                        facts=ReleaseFacts.from_json(job.release_facts),
                    )
                    settlements.store(session, job, released, timings=dict(job.timings), actor=who.name)
                view = self._view(job, held, None)
        except IntegrityError as exc:  # two requests of the same checker raced
            raise Conflict(f"{who.name} already decided on job {job_id}") from exc
        return view

    # --- helpers -----------------------------------------------------------------------------
    def _refuse_author(self, who: Principal, job_id: str, *, action: str) -> None:
        """Forbidden (and audited) when ``who`` wrote the job; checked outside any open transaction
        (the audit append is a write transaction of its own)."""
        with self.jobs.db.read() as session:
            job, _held = self._load(session, job_id)
            owner = job.owner
        if owner == who.name:
            reason = f"{who.name} wrote job {job_id}; an output checker never reviews their own job"
            self.jobs.audit.record(
                event="request.denied",
                actor=who.name,
                details={"action": action, "job": job_id, "reason": reason},
            )
            raise Forbidden(reason)

    @staticmethod
    def _scope_of(session: Session, job: JobRow) -> Scope:
        """The scope version the job was submitted under (whatever its state is now)."""
        stored = session.execute(
            select(ScopeVersionRow).where(
                ScopeVersionRow.name == job.scope, ScopeVersionRow.version_id == job.scope_version
            )
        ).scalar_one_or_none()
        if stored is None:
            raise NotFound(f"scope {job.scope!r} has no stored version {job.scope_version}")
        return parse_stored(stored.document)

    @staticmethod
    def _load(session: Session, job_id: str, *, for_update: bool = False) -> tuple[JobRow, WithheldRow]:
        """``for_update``: lock the job row, so that two checkers deciding at once on two gateways
        serialise (PostgreSQL; SQLite's write transaction already excludes other writers)."""
        job = session.get(JobRow, job_id, with_for_update=for_update)
        held = session.get(WithheldRow, job_id)
        if job is None or held is None:
            raise NotFound(f"job {job_id} has no output under review")
        return job, held

    @staticmethod
    def _view(job: JobRow, held: WithheldRow, output: Mapping[str, Any] | None) -> ReviewView:
        return ReviewView(
            job_id=job.id,
            owner=job.owner,
            scope=job.scope,
            scope_version=job.scope_version,
            kind=Kind(job.kind or Kind.SQL),
            mode=Mode(job.mode or Mode.REAL),
            state=job.state,
            reason=job.reason,
            code=job.code,
            sql=job.sql,
            required_checkers=held.required_checkers,
            decisions=list((job.review or {}).get("decisions", [])),
            report=dict(held.report),
            created_at=iso(job.created_at),
            withheld_at=iso(held.created_at),
            output=None if output is None else dict(output),
        )
