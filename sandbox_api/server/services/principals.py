"""Principals, their tokens and domains: the administrative side of the service.

A domain's key-encryption key is created here with the domain; rotating it is key work and lives
with the other keys in ``services/keys.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crypto.keyring import KeyProvider
from sandbox_api.clock import Clock
from sandbox_api.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.roles import Role
from sandbox_api.schemas import NAME_REGEX
from sandbox_api.server.auth import Principal, hash_token, hashes_match, new_token
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DomainRow, PrincipalRow, TokenRow

NAME_PATTERN = re.compile(NAME_REGEX)


def check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{kind} name {name!r} is not allowed: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def to_principal(row: PrincipalRow) -> Principal:
    return Principal(name=row.name, role=Role(row.role), domain=row.domain, groups=tuple(row.groups))


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    kek_id: str


@dataclass(frozen=True)
class PrincipalService:
    db: Database
    audit: AuditLog
    clock: Clock
    keys: KeyProvider

    # --- authentication -------------------------------------------------------------------------
    def authenticate(self, token: str) -> Principal:
        digest = hash_token(token)
        with self.db.read() as session:
            row = session.get(TokenRow, digest)
            if row is None or row.revoked_at is not None or not hashes_match(row.token_hash, token):
                raise NotAuthenticated("the bearer token is unknown or revoked; ask an admin for a new one")
            principal = session.get(PrincipalRow, row.principal)
            if principal is None:
                raise NotAuthenticated("the bearer token's principal no longer exists")
            return to_principal(principal)

    # --- principals and tokens ------------------------------------------------------------------
    def create_principal(
        self,
        session: Session,
        *,
        actor: str,
        name: str,
        role: Role,
        domain: str | None,
        groups: Sequence[str],
    ) -> tuple[Principal, str]:
        check_name("principal", name)
        for group in groups:
            check_name("group", group)
        if role is Role.STEWARD and domain is None:
            raise InvalidInput("a steward is bound to one domain: give `domain`")
        if role is not Role.STEWARD and domain is not None:
            raise InvalidInput(f"only stewards are bound to a domain; drop `domain` for role {role.value}")
        if domain is not None and session.get(DomainRow, domain) is None:
            raise NotFound(f"domain {domain!r} does not exist; create it first with POST /v1/domains")
        if session.get(PrincipalRow, name) is not None:
            raise Conflict(f"principal {name!r} already exists; pick another name or issue it a new token")
        session.add(
            PrincipalRow(
                name=name,
                role=role.value,
                domain=domain,
                groups=sorted(set(groups)),
                created_at=self.clock.now(),
                created_by=actor,
            )
        )
        session.flush()
        principal = Principal(name=name, role=role, domain=domain, groups=tuple(sorted(set(groups))))
        self.audit.append(session, event="principal.created", actor=actor, details=principal.to_dict())
        token = self.issue_token(session, actor=actor, name=name)
        return principal, token

    def issue_token(self, session: Session, *, actor: str, name: str) -> str:
        if session.get(PrincipalRow, name) is None:
            raise NotFound(f"principal {name!r} does not exist")
        token = new_token()
        digest = hash_token(token)
        session.add(TokenRow(token_hash=digest, principal=name, created_at=self.clock.now()))
        session.flush()
        # The hash prefix identifies the token in the log without making it usable.
        self.audit.append(
            session, event="token.created", actor=actor, details={"principal": name, "token_id": digest[:12]}
        )
        return token

    def revoke_tokens(self, session: Session, *, actor: str, name: str) -> int:
        if session.get(PrincipalRow, name) is None:
            raise NotFound(f"principal {name!r} does not exist")
        result = session.execute(
            update(TokenRow)
            .where(TokenRow.principal == name, TokenRow.revoked_at.is_(None))
            .values(revoked_at=self.clock.now())
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        self.audit.append(
            session, event="token.revoked", actor=actor, details={"principal": name, "count": count}
        )
        return count

    def list_principals(self) -> list[Principal]:
        with self.db.read() as session:
            rows = session.execute(select(PrincipalRow).order_by(PrincipalRow.name)).scalars()
            return [to_principal(row) for row in rows]

    def any_principal(self, session: Session) -> bool:
        return session.execute(select(PrincipalRow.name).limit(1)).first() is not None

    # --- domains ------------------------------------------------------------------------------
    def create_domain(self, session: Session, *, actor: str, name: str, description: str) -> Domain:
        check_name("domain", name)
        if session.get(DomainRow, name) is not None:
            raise Conflict(f"domain {name!r} already exists")
        kek_id = self.keys.ensure_domain(name)
        session.add(DomainRow(name=name, description=description, kek_id=kek_id, created_at=self.clock.now()))
        session.flush()
        self.audit.append(
            session, event="domain.created", actor=actor, details={"domain": name, "kek_id": kek_id}
        )
        return Domain(name=name, description=description, kek_id=kek_id)

    def list_domains(self) -> list[Domain]:
        with self.db.read() as session:
            rows = session.execute(select(DomainRow).order_by(DomainRow.name)).scalars()
            return [Domain(name=r.name, description=r.description, kek_id=r.kek_id) for r in rows]
