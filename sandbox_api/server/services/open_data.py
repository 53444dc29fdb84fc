"""Open data: a released result, proposed by its operator and published after a second review.

The city plans this product serves open vetted results to the public. Publication adds no new
disclosure check: a result is proposed only once it has been released (it passed every rule of the
release path, and an output checker where the scope asks for one), and the table published is the
released table itself, byte for byte, with the gateway's signed receipt, so anyone can check it
offline against the public signing keys. What publication adds is a second pair of eyes on the
audience: a policy officer, never the proposer, decides whether the table may leave the circle of
licensed operators. Rules:

* only the job's operator proposes, only a released job computed on real data (a mock result is made
  of synthetic twins and means nothing to the public), and a job has at most one live proposal
  (proposed or published);
* a policy officer publishes or refuses (refusal needs a reason the proposer can act on);
* a policy officer or an admin withdraws a published table, with a reason; the catalog then answers
  that the table was withdrawn, and when;
* every proposal, decision and withdrawal is an audit event; public reads need no token and name
  nobody, so they leave none (the access trace lists them as untraced, with that reason).
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotFound
from sandbox_api.job_types import Mode
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.job_queries import stored_result
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.job_views import ResultView
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.scopes import parse_stored
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import JobRow, PublicationRow, ScopeVersionRow

State = Literal["proposed", "published", "refused", "withdrawn"]
LIVE: frozenset[str] = frozenset({"proposed", "published"})
# Who may read the list of proposals: the proposer sees their own; these see every one.
OVERSEERS = frozenset({Role.POLICY_OFFICER, Role.AUDITOR, Role.ADMIN})


@dataclass(frozen=True)
class PublicationView:
    publication_id: str
    job_id: str
    title: str
    description: str
    state: State
    scope: str
    purpose: str
    proposed_by: str
    proposed_at: str
    decided_by: str | None
    decided_at: str | None
    decision_reason: str | None
    withdrawn_by: str | None
    withdrawn_at: str | None
    withdrawal_reason: str | None


@dataclass(frozen=True)
class OpenDataEntryView:
    publication_id: str
    title: str
    description: str
    purpose: str
    published_at: str
    row_count: int
    columns: list[str]


@dataclass(frozen=True)
class OpenDataView(OpenDataEntryView):
    job_id: str
    rows: list[list[Any]]
    column_types: list[str] | None
    output: dict[str, Any] | None
    result_hash: str
    receipt: dict[str, Any] | None


def _purpose(session: Session, job: JobRow) -> str:
    document = session.execute(
        select(ScopeVersionRow.document).where(
            ScopeVersionRow.name == job.scope, ScopeVersionRow.version_id == job.scope_version
        )
    ).scalar_one()
    return parse_stored(document).purpose


def _view(session: Session, row: PublicationRow) -> PublicationView:
    job = session.get(JobRow, row.job_id)
    assert job is not None  # a foreign key
    return PublicationView(
        publication_id=row.id,
        job_id=row.job_id,
        title=row.title,
        description=row.description,
        state=row.state,  # type: ignore[arg-type]  # the column holds only State values
        scope=job.scope,
        purpose=_purpose(session, job),
        proposed_by=row.proposed_by,
        proposed_at=iso(row.proposed_at),
        decided_by=row.decided_by,
        decided_at=None if row.decided_at is None else iso(row.decided_at),
        decision_reason=row.decision_reason,
        withdrawn_by=row.withdrawn_by,
        withdrawn_at=None if row.withdrawn_at is None else iso(row.withdrawn_at),
        withdrawal_reason=row.withdrawal_reason,
    )


@dataclass(frozen=True)
class OpenDataService:
    db: Database
    audit: AuditLog
    clock: Clock
    results_key: bytes
    receipts: ReceiptService | None

    # -- the workflow (authenticated) ---------------------------------------------------------------

    def propose(self, who: Principal, *, job_id: str, title: str, description: str) -> PublicationView:
        if not title.strip():
            raise InvalidInput("give the table a title the public can read")
        with self.db.write() as session:
            job = session.execute(
                select(JobRow).where(JobRow.id == job_id).with_for_update()
            ).scalar_one_or_none()
            if job is None or job.owner != who.name:
                raise NotFound(f"job {job_id} does not exist")
            if job.state != JobState.RELEASED.value:
                raise Conflict(f"job {job_id} is {job.state}; only a released result can be proposed")
            if Mode(job.mode or Mode.REAL) is Mode.MOCK:
                raise Conflict(
                    f"job {job_id} ran on mock data (synthetic twins); run it on real data and propose that "
                    "result"
                )
            live = session.execute(
                select(PublicationRow.id).where(
                    PublicationRow.job_id == job_id, PublicationRow.state.in_(LIVE)
                )
            ).scalar_one_or_none()
            if live is not None:
                raise Conflict(
                    f"job {job_id} already has publication {live}; withdraw it or wait for its decision first"
                )
            row = PublicationRow(
                id=secrets.token_hex(16),
                job_id=job_id,
                title=title.strip(),
                description=description.strip(),
                state="proposed",
                proposed_by=who.name,
                proposed_at=self.clock.now(),
            )
            session.add(row)
            session.flush()
            self.audit.append(
                session,
                event="publication.proposed",
                actor=who.name,
                details={"publication": row.id, "job": job_id, "title": row.title},
            )
            return _view(session, row)

    def proposals(self, who: Principal, *, state: State | None = None) -> list[PublicationView]:
        with self.db.read() as session:
            query = select(PublicationRow).order_by(PublicationRow.proposed_at.desc(), PublicationRow.id)
            if who.role not in OVERSEERS:
                query = query.where(PublicationRow.proposed_by == who.name)
            if state is not None:
                query = query.where(PublicationRow.state == state)
            return [_view(session, row) for row in session.execute(query).scalars()]

    def get(self, who: Principal, publication_id: str) -> PublicationView:
        with self.db.read() as session:
            return _view(session, self._visible(session, who, publication_id))

    def publish(self, who: Principal, publication_id: str, *, reason: str) -> PublicationView:
        return self._decide(who, publication_id, to="published", reason=reason)

    def refuse(self, who: Principal, publication_id: str, *, reason: str) -> PublicationView:
        if not reason.strip():
            raise InvalidInput("a refusal needs a reason the proposer can act on")
        return self._decide(who, publication_id, to="refused", reason=reason)

    def withdraw(self, who: Principal, publication_id: str, *, reason: str) -> PublicationView:
        if not reason.strip():
            raise InvalidInput("a withdrawal needs a reason; it is kept in the audit log")
        with self.db.write() as session:
            row = self._locked(session, publication_id)
            if row.state != "published":
                raise Conflict(
                    f"publication {publication_id} is {row.state}; only a published table is withdrawn"
                )
            row.state = "withdrawn"
            row.withdrawn_by = who.name
            row.withdrawn_at = self.clock.now()
            row.withdrawal_reason = reason.strip()
            self.audit.append(
                session,
                event="publication.withdrawn",
                actor=who.name,
                details={"publication": row.id, "job": row.job_id, "reason": row.withdrawal_reason},
            )
            return _view(session, row)

    def _decide(self, who: Principal, publication_id: str, *, to: State, reason: str) -> PublicationView:
        with self.db.write() as session:
            row = self._locked(session, publication_id)
            if row.state != "proposed":
                raise Conflict(f"publication {publication_id} is {row.state}; it was decided already")
            if row.proposed_by == who.name:
                raise Forbidden("the proposer cannot decide their own proposal: a second person must")
            job = session.get(JobRow, row.job_id)
            if to == "published" and (job is None or job.state != JobState.RELEASED.value):
                raise Conflict(f"job {row.job_id} is no longer released; refuse the proposal instead")
            row.state = to
            row.decided_by = who.name
            row.decided_at = self.clock.now()
            row.decision_reason = reason.strip()
            self.audit.append(
                session,
                event=f"publication.{to}",
                actor=who.name,
                details={"publication": row.id, "job": row.job_id, "reason": row.decision_reason},
            )
            return _view(session, row)

    @staticmethod
    def _locked(session: Session, publication_id: str) -> PublicationRow:
        row = session.execute(
            select(PublicationRow).where(PublicationRow.id == publication_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"publication {publication_id} does not exist")
        return row

    @staticmethod
    def _visible(session: Session, who: Principal, publication_id: str) -> PublicationRow:
        row = session.get(PublicationRow, publication_id)
        # Another operator's proposal answers like a missing one: its existence is not theirs to learn.
        if row is None or (who.role not in OVERSEERS and row.proposed_by != who.name):
            raise NotFound(f"publication {publication_id} does not exist")
        return row

    # -- the public catalog (no token) --------------------------------------------------------------

    def catalog(self) -> list[OpenDataEntryView]:
        with self.db.read() as session:
            rows = session.execute(
                select(PublicationRow)
                .where(PublicationRow.state == "published")
                .order_by(PublicationRow.decided_at.desc(), PublicationRow.id)
            ).scalars()
            return [self._entry(session, row, self._result(session, row)) for row in rows]

    def published(self, publication_id: str) -> OpenDataView:
        with self.db.read() as session:
            row = session.get(PublicationRow, publication_id)
            if row is None or row.state not in ("published", "withdrawn"):
                raise NotFound(f"no published table {publication_id}")
            if row.state == "withdrawn":
                assert row.withdrawn_at is not None
                raise NotFound(f"table {publication_id} was withdrawn on {iso(row.withdrawn_at)}")
            result = self._result(session, row)
            entry = self._entry(session, row, result)
            return OpenDataView(
                **vars(entry),
                job_id=row.job_id,
                rows=result.rows,
                column_types=result.column_types,
                output=result.output,
                result_hash=result.result_hash,
                receipt=result.receipt,
            )

    def _result(self, session: Session, row: PublicationRow) -> ResultView:
        job = session.get(JobRow, row.job_id)
        assert job is not None  # a foreign key
        return stored_result(session, job, results_key=self.results_key, receipts=self.receipts)

    @staticmethod
    def _entry(session: Session, row: PublicationRow, result: ResultView) -> OpenDataEntryView:
        job = session.get(JobRow, row.job_id)
        assert job is not None
        assert row.decided_at is not None
        return OpenDataEntryView(
            publication_id=row.id,
            title=row.title,
            description=row.description,
            purpose=_purpose(session, job),
            published_at=iso(row.decided_at),
            row_count=result.row_count,
            columns=result.columns,
        )


def as_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 text with a header line; a null is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()
