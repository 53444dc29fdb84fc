"""Access applications: an operator applies, a policy officer drafts a scope from it or refuses it.

The draft is an ordinary pending scope version (services/scopes.py) whose author is the drafting
officer, so its approval is the scope workflow's four eyes: a second officer, never the author, never
the applicant. An application's outcome is therefore read from its scope version: approved, rejected
(the rejection's reason is the refusal's), revoked. Every step is an audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies import load_scope
from policies.applications import Application, draft_findings
from sandbox_api.clock import Clock, iso, today
from sandbox_api.errors import Conflict, InvalidInput, NotFound, ScopeInconsistent
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.scopes import APPROVED, PENDING, ScopeService
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import AccessApplicationRow, ScopeVersionRow

SUBMITTED, DRAFTED, REFUSED = "submitted", "drafted", "refused"
# What an operator reads: the application's own step, or once drafted its scope version's outcome.
OUTCOMES = {PENDING: "awaiting_approval", APPROVED: "approved", "rejected": "refused"}


@dataclass(frozen=True)
class ApplicationView:
    id: str
    applicant: str
    datasets: list[str]
    purpose: str
    columns: dict[str, list[str]]
    duration_days: int
    state: str  # submitted | awaiting_approval | approved | refused | revoked | superseded
    reason: str
    scope_name: str | None
    scope_version: str | None
    drafted_by: str | None
    decided_by: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ApplicationService:
    db: Database
    audit: AuditLog
    clock: Clock
    scopes: ScopeService

    def submit(
        self,
        *,
        actor: Principal,
        datasets: Sequence[str],
        purpose: str,
        columns: Mapping[str, Sequence[str]],
        duration_days: int,
    ) -> ApplicationView:
        """Store an operator's application (it names datasets that exist, and columns of them only)."""
        wanted = sorted(set(datasets))
        stray = sorted(set(columns) - set(wanted))
        if stray:
            raise InvalidInput(
                f"columns are asked of datasets not applied for: {stray}; list them in datasets"
            )
        known = self.scopes.catalog.current_versions()
        for dataset in wanted:
            version = known.get(dataset)
            if version is None:
                raise NotFound(f"dataset {dataset!r} has no current version; apply for one that exists")
            names = {str(col["name"]).lower() for table in version.tables for col in table["columns"]}
            unknown = sorted(c for c in columns.get(dataset, ()) if c.lower() not in names)
            if unknown:
                raise InvalidInput(f"dataset {dataset} has no columns {unknown}")
        now = self.clock.now()
        row = AccessApplicationRow(
            id=uuid.uuid4().hex,
            applicant=actor.name,
            datasets=wanted,
            purpose=purpose,
            columns={d: sorted(set(columns.get(d, ()))) for d in wanted},
            duration_days=duration_days,
            state=SUBMITTED,
            reason="",
            created_at=now,
            updated_at=now,
        )
        with self.db.write() as session:
            session.add(row)
            session.flush()
            self.audit.append(
                session,
                event="application.submitted",
                actor=actor.name,
                details={"application": row.id, "datasets": wanted, "duration_days": duration_days},
            )
            return self._view(session, row)

    def draft(
        self, *, actor: Principal, application_id: str, document: str, fmt: Literal["yaml", "json"]
    ) -> ApplicationView:
        """Turn a submitted application into a pending scope version that grants no more than asked."""
        with self.db.write() as session:
            row = self._row(session, application_id)
            if row.state != SUBMITTED:
                raise Conflict(f"application {row.id} is {row.state}; only submitted ones are drafted")
            scope = load_scope(document, fmt=fmt)
            asked = Application(
                applicant=row.applicant,
                datasets=list(row.datasets),
                columns={k: list(v) for k, v in row.columns.items()},
                duration_days=row.duration_days,
            )
            findings = draft_findings(asked, scope, today=today(self.clock))
            if findings:
                raise ScopeInconsistent(
                    f"the draft grants more than application {row.id} asked for; narrow it as listed",
                    findings=findings,
                )
            view, created = self.scopes.create(session, actor=actor, document=document, fmt=fmt)
            if not created:
                # An existing version was decided without this application: its approval must be
                # this application's own (four eyes on what was asked), so the draft must be new.
                raise Conflict(
                    f"scope {view.name} version {view.version_id[:12]} exists already ({view.state}); "
                    "draft a version of its own for this application (a new name or purpose, say)"
                )
            row.state, row.drafted_by, row.updated_at = DRAFTED, actor.name, self.clock.now()
            row.scope_name, row.scope_version = view.name, view.version_id
            self.audit.append(
                session,
                event="application.drafted",
                actor=actor.name,
                details={"application": row.id, "scope": view.name, "version": view.version_id},
            )
            return self._view(session, row)

    def refuse(self, *, actor: Principal, application_id: str, reason: str) -> ApplicationView:
        if not reason.strip():
            raise InvalidInput("a refusal needs a reason the applicant can act on")
        with self.db.write() as session:
            row = self._row(session, application_id)
            if row.state == REFUSED:
                return self._view(session, row)
            if row.state != SUBMITTED:
                raise Conflict(
                    f"application {row.id} is {row.state}; reject its scope version "
                    f"{(row.scope_version or '')[:12]} instead"
                )
            row.state, row.reason, row.decided_by, row.updated_at = (
                REFUSED,
                reason,
                actor.name,
                self.clock.now(),
            )
            self.audit.append(
                session,
                event="application.refused",
                actor=actor.name,
                details={"application": row.id, "reason": reason},
            )
            return self._view(session, row)

    # --- reading -------------------------------------------------------------------------------
    def list_for(self, who: Principal) -> list[ApplicationView]:
        """An operator's own applications; every application for the other roles that may read them."""
        with self.db.read() as session:
            query = select(AccessApplicationRow).order_by(AccessApplicationRow.created_at)
            if who.role is Role.OPERATOR:
                query = query.where(AccessApplicationRow.applicant == who.name)
            return [self._view(session, row) for row in session.execute(query).scalars()]

    def get(self, who: Principal, application_id: str) -> ApplicationView:
        with self.db.read() as session:
            row = session.get(AccessApplicationRow, application_id)
            # Another operator's application answers as a missing one: ids reveal nothing.
            if row is None or (who.role is Role.OPERATOR and row.applicant != who.name):
                raise NotFound(f"application {application_id} does not exist")
            return self._view(session, row)

    @staticmethod
    def _row(session: Session, application_id: str) -> AccessApplicationRow:
        row = session.get(AccessApplicationRow, application_id, with_for_update=True)
        if row is None:
            raise NotFound(f"application {application_id} does not exist")
        return row

    def _view(self, session: Session, row: AccessApplicationRow) -> ApplicationView:
        state, reason, decided_by = row.state, row.reason, row.decided_by
        if row.state == DRAFTED:
            version = session.execute(
                select(ScopeVersionRow).where(
                    ScopeVersionRow.name == row.scope_name, ScopeVersionRow.version_id == row.scope_version
                )
            ).scalar_one_or_none()
            if version is not None:
                state = OUTCOMES.get(version.state, version.state)
                if version.state != PENDING:
                    reason = version.reason
                    decided_by = (
                        version.approvals[-1] if version.state == APPROVED and version.approvals else None
                    )
        return ApplicationView(
            id=row.id,
            applicant=row.applicant,
            datasets=list(row.datasets),
            purpose=row.purpose,
            columns={k: list(v) for k, v in row.columns.items()},
            duration_days=row.duration_days,
            state=state,
            reason=reason,
            scope_name=row.scope_name,
            scope_version=row.scope_version,
            drafted_by=row.drafted_by,
            decided_by=decided_by,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )
