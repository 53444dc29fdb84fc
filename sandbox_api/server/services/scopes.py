"""The scope workflow: an officer proposes a version, a different officer approves, anyone of them revokes.

Versions are immutable (their id is the SHA-256 of the canonical document). The active version of a
scope is its approved one, while it is neither revoked nor outside its validity window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from policies import Scope, check_scope, load_scope
from policies.catalog import Catalog
from policies.findings import Finding
from policies.levels import DEFAULT_LEVELS, Levels, level_findings
from sandbox_api.clock import Clock, iso, today
from sandbox_api.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ScopeExpired,
    ScopeInconsistent,
    ScopeNotActive,
)
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.catalog import CatalogService, VersionView
from sandbox_api.server.services.policy_catalog import build_catalog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import ScopeVersionRow

PENDING, APPROVED, REJECTED, REVOKED, SUPERSEDED = "pending", "approved", "rejected", "revoked", "superseded"


@dataclass(frozen=True)
class ScopeVersionView:
    name: str
    version_id: str
    state: str
    author: str
    approvals: list[str]
    required_approvals: int
    reason: str
    created_at: str
    decided_at: str | None
    document: dict[str, Any]
    active: bool
    inactive_reason: str | None


@dataclass(frozen=True)
class ActiveScope:
    scope: Scope
    version_id: str
    # The catalog's current versions as the floors were checked against them, read in the same request:
    # a submission checks the job against these instead of reading the catalog a second time.
    versions: Mapping[str, VersionView] | None = field(default=None, compare=False, repr=False)


def _canonical_text(scope: Scope) -> str:
    raw: object = scope.canonical_json()
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def version_id_under(scope: Scope, profile: CryptoProfile) -> str:
    """A scope version's id under ``profile``: :attr:`policies.Scope.version_id` (SHA-256, as always)
    under ``international``, the profile's hash of the same canonical form otherwise."""
    return scope.version_id if profile.name == INTERNATIONAL else scope.version_id_with(profile.hash_hex)


def parse_stored(document: str) -> Scope:
    return load_scope(document, fmt="json")


def required_approvals(scope: Scope) -> int:
    return max(2, int(getattr(scope.approvals, "required", 2)))


@dataclass(frozen=True)
class ScopeService:
    db: Database
    audit: AuditLog
    clock: Clock
    catalog: CatalogService
    # The deployment's classification levels (policies/levels.py): floors no scope can go below.
    levels: Levels = DEFAULT_LEVELS
    # The deployment's algorithms: a version's id is the profile's hash of its canonical form.
    profile: CryptoProfile = PROFILES[INTERNATIONAL]

    def version_id_of(self, scope: Scope) -> str:
        """The id of ``scope``'s version in this deployment (SHA-256, or SM3 under ``gm``)."""
        return version_id_under(scope, self.profile)

    # --- proposing -----------------------------------------------------------------------------
    def create(
        self, session: Session, *, actor: Principal, document: str, fmt: Literal["yaml", "json"]
    ) -> tuple[ScopeVersionView, bool]:
        """Validate and store a pending version; an identical document answers the stored version."""
        scope = load_scope(document, fmt=fmt)  # raises ScopeInvalid with findings
        catalog = build_catalog(self.catalog.current_versions())
        findings = check_scope(scope, catalog)
        if findings:
            raise ScopeInconsistent(
                f"scope {scope.name!r} does not match the catalog; fix the listed datasets and columns",
                findings=findings,
            )
        self._enforce_floors(scope, catalog)
        version_id = self.version_id_of(scope)
        existing = self._row(session, scope.name, version_id, required=False)
        if existing is not None:
            return self._view(existing), False
        row = ScopeVersionRow(
            name=scope.name,
            version_id=version_id,
            document=_canonical_text(scope),
            author=actor.name,
            state=PENDING,
            approvals=[],
            reason="",
            created_at=self.clock.now(),
        )
        session.add(row)
        session.flush()
        self.audit.append(
            session,
            event="scope.created",
            actor=actor.name,
            details={"scope": scope.name, "version": version_id},
        )
        return self._view(row), True

    # --- deciding ------------------------------------------------------------------------------
    def approve(self, *, actor: Principal, name: str, version_id: str, reason: str) -> ScopeVersionView:
        """Record one officer's approval; the version is approved once enough officers agree.

        The four-eyes checks run before the write transaction so that a refusal is audited on its own
        (the refused change itself is never written).
        """
        with self.db.read() as session:
            row = self._row(session, name, version_id)
        refusal = self._approval_refusal(actor, row)
        if refusal is not None:
            self.audit.record(
                event="request.denied",
                actor=actor.name,
                details={"action": "scope.approve", "scope": name, "version": version_id, "reason": refusal},
            )
            raise Forbidden(refusal)
        if row.state == PENDING:
            # The floors again: a dataset may have a new version of a higher level since the proposal,
            # or the deployment may have raised its floors. A refusal is audited and changes nothing.
            breaches = self._floor_breaches(
                parse_stored(row.document), build_catalog(self.catalog.current_versions())
            )
            if breaches:
                self.audit.record(
                    event="scope.approval.refused",
                    actor=actor.name,
                    details={
                        "scope": name,
                        "version": version_id,
                        "floors": sorted({f.rule for f in breaches}),
                    },
                )
                raise self._floors_error(name, breaches)
        with self.db.write() as session:
            row = self._row(session, name, version_id)
            if row.state == APPROVED and actor.name in row.approvals:
                return self._view(row)  # a repeated approval is harmless
            if row.state != PENDING:
                raise Conflict(
                    f"scope {name} version {version_id[:12]} is {row.state}; only pending ones are approved"
                )
            if actor.name in row.approvals:
                raise Conflict("you already approved this version; another officer must approve too")
            scope = parse_stored(row.document)
            row.approvals = [*row.approvals, actor.name]
            self.audit.append(
                session,
                event="scope.approval.recorded",
                actor=actor.name,
                details={"scope": name, "version": version_id, "reason": reason},
            )
            if 1 + len(row.approvals) >= required_approvals(scope):
                self._supersede_others(session, actor=actor.name, row=row)
                row.state = APPROVED
                row.reason = reason
                row.decided_at = self.clock.now()
                self.audit.append(
                    session,
                    event="scope.approved",
                    actor=actor.name,
                    details={"scope": name, "version": version_id, "approvals": [row.author, *row.approvals]},
                )
            return self._view(row)

    def _floor_breaches(self, scope: Scope, catalog: Catalog) -> tuple[Finding, ...]:
        return level_findings(scope, catalog, self.levels)

    def _enforce_floors(self, scope: Scope, catalog: Catalog) -> None:
        breaches = self._floor_breaches(scope, catalog)
        if breaches:
            raise self._floors_error(scope.name, breaches)

    @staticmethod
    def _floors_error(name: str, breaches: tuple[Finding, ...]) -> ScopeInconsistent:
        return ScopeInconsistent(
            f"scope {name!r} goes below the floors of its datasets' classification levels; raise it to "
            "the floors listed in findings (docs/governance.md)",
            findings=breaches,
        )

    @staticmethod
    def _approval_refusal(actor: Principal, row: ScopeVersionRow) -> str | None:
        if actor.name == row.author:
            return "the author of a scope cannot approve it: ask a second policy officer (four eyes)"
        if parse_stored(row.document).is_grantee(actor.name, actor.groups):
            return "a grantee of a scope cannot approve it"
        return None

    def reject(
        self, session: Session, *, actor: Principal, name: str, version_id: str, reason: str
    ) -> ScopeVersionView:
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason the author can act on")
        row = self._row(session, name, version_id)
        if row.state == REJECTED:
            return self._view(row)
        if row.state != PENDING:
            raise Conflict(
                f"scope {name} version {version_id[:12]} is {row.state}; only pending ones are rejected"
            )
        row.state, row.reason, row.decided_at = REJECTED, reason, self.clock.now()
        self.audit.append(
            session,
            event="scope.rejected",
            actor=actor.name,
            details={"scope": name, "version": version_id, "reason": reason},
        )
        return self._view(row)

    def revoke(
        self, session: Session, *, actor: Principal, name: str, version_id: str, reason: str
    ) -> ScopeVersionView:
        if not reason.strip():
            raise InvalidInput("revoking a scope needs a reason its grantees and auditors can read")
        row = self._row(session, name, version_id)
        if row.state == REVOKED:
            return self._view(row)
        if row.state not in {APPROVED, PENDING}:
            raise Conflict(f"scope {name} version {version_id[:12]} is {row.state}; it cannot be revoked")
        row.state, row.reason, row.decided_at = REVOKED, reason, self.clock.now()
        self.audit.append(
            session,
            event="scope.revoked",
            actor=actor.name,
            details={"scope": name, "version": version_id, "reason": reason},
        )
        return self._view(row)

    # --- reading -------------------------------------------------------------------------------
    def list_versions(self, *, name: str | None = None) -> list[ScopeVersionView]:
        with self.db.read() as session:
            query = select(ScopeVersionRow).order_by(ScopeVersionRow.name, ScopeVersionRow.id)
            if name is not None:
                query = query.where(ScopeVersionRow.name == name)
            return [self._view(row) for row in session.execute(query).scalars()]

    def granted_to(self, who: Principal) -> list[ScopeVersionView]:
        """The active scope versions that name ``who`` (directly or through a group)."""
        views = [v for v in self.list_versions() if v.active]
        return [v for v in views if parse_stored_view(v).is_grantee(who.name, who.groups)]

    def active(self, name: str, *, version_id: str | None = None) -> ActiveScope:
        """The scope version a job may use now; ``ScopeNotActive`` says why not."""
        with self.db.read() as session:
            rows = list(
                session.execute(
                    select(ScopeVersionRow).where(ScopeVersionRow.name == name).order_by(ScopeVersionRow.id)
                ).scalars()
            )
        if not rows:
            raise NotFound(f"scope {name!r} does not exist")
        if version_id is not None:
            rows = [r for r in rows if r.version_id == version_id]
            if not rows:
                raise NotFound(f"scope {name!r} has no version {version_id}")
        approved = [r for r in rows if r.state == APPROVED]
        if not approved:
            states = sorted({r.state for r in rows})
            raise ScopeNotActive(
                f"scope {name!r} has no approved version (versions are {', '.join(states)}); "
                "a policy officer other than its author must approve it"
            )
        row = approved[-1]
        scope = parse_stored(row.document)
        problem = validity_problem(scope, today(self.clock))
        if problem is not None:
            raise ScopeExpired(f"scope {name!r} is not valid today: {problem}")
        # Floors bind approved versions too: data re-classified upwards (a new version at a higher
        # level) stops the scopes below its floors until an officer approves one that meets them.
        versions = self.catalog.current_versions()
        breaches = self._floor_breaches(scope, build_catalog(versions))
        if breaches:
            raise ScopeNotActive(
                f"scope {name!r} is below the floors of its datasets' classification levels now; a policy "
                "officer must approve a version that meets the floors listed in findings",
                findings=breaches,
            )
        return ActiveScope(scope=scope, version_id=row.version_id, versions=versions)

    def version_state(self, name: str, version_id: str) -> str:
        with self.db.read() as session:
            return self._row(session, name, version_id).state

    # --- helpers -------------------------------------------------------------------------------
    def _supersede_others(self, session: Session, *, actor: str, row: ScopeVersionRow) -> None:
        others = session.execute(
            select(ScopeVersionRow).where(
                ScopeVersionRow.name == row.name,
                ScopeVersionRow.state == APPROVED,
                ScopeVersionRow.id != row.id,
            )
        ).scalars()
        for other in others:
            other.state = SUPERSEDED
            other.decided_at = self.clock.now()
            self.audit.append(
                session,
                event="scope.superseded",
                actor=actor,
                details={"scope": other.name, "version": other.version_id, "by": row.version_id},
            )

    @staticmethod
    def _row(session: Session, name: str, version_id: str, *, required: bool = True) -> ScopeVersionRow:
        row = session.execute(
            select(ScopeVersionRow).where(
                ScopeVersionRow.name == name, ScopeVersionRow.version_id == version_id
            )
        ).scalar_one_or_none()
        if row is None and required:
            raise NotFound(f"scope {name!r} has no version {version_id}")
        return row  # type: ignore[return-value]

    def _view(self, row: ScopeVersionRow) -> ScopeVersionView:
        scope = parse_stored(row.document)
        problem = None
        if row.state != APPROVED:
            problem = f"version is {row.state}"
        else:
            problem = validity_problem(scope, today(self.clock))
        return ScopeVersionView(
            name=row.name,
            version_id=row.version_id,
            state=row.state,
            author=row.author,
            approvals=list(row.approvals),
            required_approvals=required_approvals(scope),
            reason=row.reason,
            created_at=iso(row.created_at),
            decided_at=None if row.decided_at is None else iso(row.decided_at),
            document=json.loads(row.document),
            active=problem is None,
            inactive_reason=problem,
        )


def parse_stored_view(view: ScopeVersionView) -> Scope:
    return load_scope(json.dumps(view.document), fmt="json")


def validity_problem(scope: Scope, on: date) -> str | None:
    finding = scope.validity_finding(on)
    return None if finding is None else finding.message
