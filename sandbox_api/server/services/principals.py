"""Principals, their tokens and domains: the administrative side of the service.

A domain's key-encryption key is created here with the domain; rotating it is key work and lives
with the other keys in ``services/keys.py``.

Token lifecycle: every token carries an expiry (``token_ttl`` unless the issuer asks for less, never
more than ``token_max_ttl``), a name, and the time it was last used. A token is known publicly by its id,
the first 12 hex digits of its SHA-256 (never the secret), so it can be listed and revoked alone. A
disabled principal keeps its tokens, but none of them work until the principal is enabled again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


#: Length of a token's public id: a prefix of its hash (48 bits; unique in practice, checked anyway).
TOKEN_ID_LENGTH = 12
TOKEN_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")
#: Roles bound to exactly one domain, and the role that may carry one (the domain that manages it).
DOMAIN_BOUND = frozenset({Role.STEWARD, Role.DOMAIN_ADMIN})
DOMAIN_OPTIONAL = frozenset({Role.OPERATOR})


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for aware columns: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _maybe_aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the secret (shown once) with its public id and expiry."""

    secret: str
    id: str
    name: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the secret, nor its full hash."""

    id: str
    principal: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class PrincipalRecord:
    principal: Principal
    disabled_at: datetime | None


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
    token_ttl: timedelta = timedelta(days=90)
    token_max_ttl: timedelta = timedelta(days=365)
    # ``last_used_at`` is written at most this often per token: a busy client must not turn every
    # request into a write on the metadata database.
    last_used_resolution: timedelta = timedelta(minutes=1)

    # --- authentication -------------------------------------------------------------------------
    def authenticate(self, token: str) -> Principal:
        digest = hash_token(token)
        now = self.clock.now()
        with self.db.read() as session:
            # The token and its principal in one query: every request pays for this read.
            found = session.execute(
                select(TokenRow, PrincipalRow)
                .outerjoin(PrincipalRow, PrincipalRow.name == TokenRow.principal)
                .where(TokenRow.token_hash == digest)
            ).one_or_none()
            row, principal = (None, None) if found is None else (found[0], found[1])
            if row is None or row.revoked_at is not None or not hashes_match(row.token_hash, token):
                raise NotAuthenticated("the bearer token is unknown or revoked; ask an admin for a new one")
            expires_at = self._expiry(row)
            if expires_at <= now:
                raise NotAuthenticated(
                    f"the bearer token expired at {expires_at.isoformat()}; ask an admin for a new one"
                )
            if principal is None:
                raise NotAuthenticated("the bearer token's principal no longer exists")
            if principal.disabled_at is not None:
                raise NotAuthenticated(f"principal {principal.name} is disabled; ask an admin")
            last_used = _maybe_aware(row.last_used_at)
            who = to_principal(principal)
        if last_used is None or now - last_used >= self.last_used_resolution:
            with self.db.write() as session:
                session.execute(
                    update(TokenRow).where(TokenRow.token_hash == digest).values(last_used_at=now)
                )
        return who

    def admit_sso(self, who: Principal) -> Principal:
        """A single sign-on identity, unless a local principal of that name says otherwise.

        A local principal of the same name must have the same role and domain (an issuer cannot hand
        someone a local principal's name, with its jobs and grants, under another role), and must not
        be disabled: that is how an admin locks one single sign-on identity out at the gateway.
        """
        with self.db.read() as session:
            row = session.get(PrincipalRow, who.name)
            if row is None:
                return who
            if row.disabled_at is not None:
                raise NotAuthenticated(f"principal {who.name} is disabled; ask an admin")
            if (row.role, row.domain) != (who.role.value, who.domain):
                raise NotAuthenticated(
                    f"{who.name} is a local principal with another role or domain; the single sign-on "
                    "identity cannot take its name"
                )
            return who

    def _expiry(self, row: TokenRow) -> datetime:
        if row.expires_at is not None:
            return _aware(row.expires_at)
        return _aware(row.created_at) + self.token_ttl  # issued before expiries existed

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
    ) -> tuple[Principal, IssuedToken]:
        check_name("principal", name)
        for group in groups:
            check_name("group", group)
        if role in DOMAIN_BOUND and domain is None:
            raise InvalidInput(f"a {role.value} is bound to one domain: give `domain`")
        if role not in DOMAIN_BOUND | DOMAIN_OPTIONAL and domain is not None:
            raise InvalidInput(
                f"only stewards, domain administrators and operators carry a domain; drop `domain` for "
                f"role {role.value}"
            )
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

    def issue_token(
        self,
        session: Session,
        *,
        actor: str,
        name: str,
        token_name: str = "",
        expires_in: timedelta | None = None,
    ) -> IssuedToken:
        if session.get(PrincipalRow, name) is None:
            raise NotFound(f"principal {name!r} does not exist")
        if token_name:
            check_name("token", token_name)
        lifetime = self.token_ttl if expires_in is None else expires_in
        if lifetime <= timedelta(0) or lifetime > self.token_max_ttl:
            raise InvalidInput(
                f"a token lives between 1 second and {self.token_max_ttl.days} days "
                "(setting token_max_ttl_days)"
            )
        now = self.clock.now()
        secret = new_token()
        digest = hash_token(secret)
        token_id = digest[:TOKEN_ID_LENGTH]
        clash = session.execute(
            select(TokenRow.token_hash).where(TokenRow.token_hash.startswith(token_id, autoescape=True))
        ).first()
        if clash is not None:  # 2**-48 per pair; never hand out an id that names two tokens
            return self.issue_token(
                session, actor=actor, name=name, token_name=token_name, expires_in=expires_in
            )
        expires_at = now + lifetime
        session.add(
            TokenRow(
                token_hash=digest,
                principal=name,
                created_at=now,
                name=token_name,
                expires_at=expires_at,
            )
        )
        session.flush()
        # The hash prefix identifies the token in the log without making it usable.
        self.audit.append(
            session,
            event="token.created",
            actor=actor,
            details={
                "principal": name,
                "token_id": token_id,
                "name": token_name,
                "expires_at": expires_at.isoformat(),
            },
        )
        return IssuedToken(secret=secret, id=token_id, name=token_name, expires_at=expires_at)

    def list_tokens(self, name: str) -> list[TokenInfo]:
        with self.db.read() as session:
            if session.get(PrincipalRow, name) is None:
                raise NotFound(f"principal {name!r} does not exist")
            rows = session.execute(
                select(TokenRow).where(TokenRow.principal == name).order_by(TokenRow.created_at)
            ).scalars()
            return [self._info(row) for row in rows]

    def _info(self, row: TokenRow) -> TokenInfo:
        return TokenInfo(
            id=row.token_hash[:TOKEN_ID_LENGTH],
            principal=row.principal,
            name=row.name,
            created_at=_aware(row.created_at),
            expires_at=self._expiry(row),
            last_used_at=_maybe_aware(row.last_used_at),
            revoked_at=_maybe_aware(row.revoked_at),
        )

    def revoke_token(self, session: Session, *, actor: str, name: str, token_id: str) -> TokenInfo:
        """Revoke the one token of ``name`` with that id (idempotent: a revoked token stays revoked)."""
        if session.get(PrincipalRow, name) is None:
            raise NotFound(f"principal {name!r} does not exist")
        if not TOKEN_ID_PATTERN.fullmatch(token_id):
            raise NotFound(f"principal {name!r} has no token {token_id!r}")
        row = session.execute(
            select(TokenRow).where(
                TokenRow.principal == name, TokenRow.token_hash.startswith(token_id, autoescape=True)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"principal {name!r} has no token {token_id!r}")
        if row.revoked_at is None:
            row.revoked_at = self.clock.now()
            session.flush()
            self.audit.append(
                session,
                event="token.revoked",
                actor=actor,
                details={"principal": name, "token_id": token_id, "count": 1},
            )
        return self._info(row)

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

    # --- disabling --------------------------------------------------------------------------------
    def set_disabled(self, session: Session, *, actor: str, name: str, disabled: bool) -> PrincipalRecord:
        """Disable or enable ``name`` (idempotent). The caller settles the principal's jobs in the same
        transaction; an admin cannot disable themselves, nor the last enabled admin."""
        row = session.get(PrincipalRow, name, with_for_update=True)
        if row is None:
            raise NotFound(f"principal {name!r} does not exist")
        if disabled and name == actor:
            raise Conflict("you cannot disable yourself; ask another administrator")
        if disabled and row.role == Role.ADMIN.value and row.disabled_at is None:
            enabled_admins = session.execute(
                select(PrincipalRow.name).where(
                    PrincipalRow.role == Role.ADMIN.value, PrincipalRow.disabled_at.is_(None)
                )
            ).all()
            if len(enabled_admins) <= 1:
                raise Conflict(f"{name} is the last enabled admin; disabling it would lock everyone out")
        if (row.disabled_at is not None) != disabled:
            row.disabled_at = self.clock.now() if disabled else None
            row.disabled_by = actor if disabled else None
            session.flush()
            self.audit.append(
                session,
                event="principal.disabled" if disabled else "principal.enabled",
                actor=actor,
                details={"principal": name, "role": row.role, "domain": row.domain},
            )
        return PrincipalRecord(principal=to_principal(row), disabled_at=_maybe_aware(row.disabled_at))

    def record(self, name: str) -> PrincipalRecord:
        with self.db.read() as session:
            row = session.get(PrincipalRow, name)
            if row is None:
                raise NotFound(f"principal {name!r} does not exist")
            return PrincipalRecord(principal=to_principal(row), disabled_at=_maybe_aware(row.disabled_at))

    def list_principals(self, *, domain: str | None = None) -> list[PrincipalRecord]:
        """Every principal, or (``domain``) only that domain's."""
        with self.db.read() as session:
            query = select(PrincipalRow).order_by(PrincipalRow.name)
            if domain is not None:
                query = query.where(PrincipalRow.domain == domain)
            return [
                PrincipalRecord(principal=to_principal(row), disabled_at=_maybe_aware(row.disabled_at))
                for row in session.execute(query).scalars()
            ]

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
