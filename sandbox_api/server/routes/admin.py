"""Domains, principals, tokens and keys: the admin's resources."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, status

from sandbox_api.roles import Role
from sandbox_api.schemas import (
    DomainCreate,
    DomainOut,
    KeyRotated,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalOut,
    PrincipalStatus,
    TokenCreate,
    TokenCreated,
    TokenOut,
    TokensRevoked,
)
from sandbox_api.server import admin_scope
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import AdminDep, PrincipalDep, PrincipalManagerDep, Services, ServicesDep, deny
from sandbox_api.server.services.principals import PrincipalRecord, TokenInfo

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/domains", status_code=status.HTTP_201_CREATED, summary="Create a domain (and its key)")
def create_domain(body: DomainCreate, who: AdminDep, services: ServicesDep) -> DomainOut:
    with services.db.write() as session:
        domain = services.principals.create_domain(
            session, actor=who.name, name=body.name, description=body.description
        )
    return DomainOut(name=domain.name, description=domain.description, kek_id=domain.kek_id)


@router.get("/domains", summary="List domains")
def list_domains(_who: PrincipalDep, services: ServicesDep) -> list[DomainOut]:
    return [
        DomainOut(name=d.name, description=d.description, kek_id=d.kek_id)
        for d in services.principals.list_domains()
    ]


@router.post(
    "/domains/{name}/keys/rotate",
    summary="Rotate the domain's key-encryption key; data keys are re-wrapped, data is untouched",
)
def rotate_domain_key(name: str, who: AdminDep, services: ServicesDep) -> KeyRotated:
    with services.db.write() as session:
        kek_id, count = services.lifecycle.rotate_domain_key(session, actor=who.name, name=name)
    return KeyRotated(domain=name, kek_id=kek_id, rewrapped_versions=count)


def _out(record: PrincipalRecord) -> PrincipalOut:
    p = record.principal
    return PrincipalOut(
        name=p.name,
        role=p.role,
        domain=p.domain,
        groups=list(p.groups),
        disabled=record.disabled_at is not None,
    )


def _token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(
        id=info.id,
        principal=info.principal,
        name=info.name,
        created_at=info.created_at,
        expires_at=info.expires_at,
        last_used_at=info.last_used_at,
        revoked_at=info.revoked_at,
    )


def _managed(services: Services, request: Request, who: Principal, name: str) -> PrincipalRecord:
    """The target principal, once ``who`` may manage it (a refusal is audited)."""
    record = services.principals.record(name)
    reason = admin_scope.refusal(who, role=record.principal.role, domain=record.principal.domain)
    if reason is not None:
        raise deny(services, request, who, reason)
    return record


@router.post(
    "/principals",
    status_code=status.HTTP_201_CREATED,
    summary="Create a principal; the answer holds its first token (shown once)",
)
def create_principal(
    body: PrincipalCreate, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> PrincipalCreated:
    domain = body.domain
    if who.role is Role.DOMAIN_ADMIN and body.role is Role.OPERATOR and domain is None:
        domain = who.domain  # a domain administrator's operators belong to their domain
    reason = admin_scope.refusal(who, role=body.role, domain=domain)
    if reason is not None:
        raise deny(services, request, who, reason)
    with services.db.write() as session:
        principal, token = services.principals.create_principal(
            session, actor=who.name, name=body.name, role=body.role, domain=domain, groups=body.groups
        )
    return PrincipalCreated(
        principal=PrincipalOut(
            name=principal.name, role=principal.role, domain=principal.domain, groups=list(principal.groups)
        ),
        token=token.secret,
        token_id=token.id,
        expires_at=token.expires_at,
    )


@router.get("/principals", summary="List principals (a domain administrator sees their domain's)")
def list_principals(who: PrincipalManagerDep, services: ServicesDep) -> list[PrincipalOut]:
    if who.role is Role.ADMIN:
        records = services.principals.list_principals()
    else:
        records = [
            r
            for r in services.principals.list_principals(domain=who.domain)
            if admin_scope.refusal(who, role=r.principal.role, domain=r.principal.domain) is None
        ]
    return [_out(r) for r in records]


@router.post(
    "/principals/{name}/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Issue another token (shown once) with its expiry",
)
def create_token(
    name: str,
    request: Request,
    who: PrincipalManagerDep,
    services: ServicesDep,
    body: TokenCreate | None = None,
) -> TokenCreated:
    _managed(services, request, who, name)
    body = body or TokenCreate()
    expires_in = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
    with services.db.write() as session:
        token = services.principals.issue_token(
            session, actor=who.name, name=name, token_name=body.name, expires_in=expires_in
        )
    return TokenCreated(
        principal=name, token=token.secret, token_id=token.id, name=token.name, expires_at=token.expires_at
    )


@router.get("/principals/{name}/tokens", summary="List a principal's tokens (ids and dates, never secrets)")
def list_tokens(
    name: str, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> list[TokenOut]:
    _managed(services, request, who, name)
    return [_token_out(t) for t in services.principals.list_tokens(name)]


@router.delete("/principals/{name}/tokens", summary="Revoke every token of a principal")
def revoke_tokens(
    name: str, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> TokensRevoked:
    _managed(services, request, who, name)
    with services.db.write() as session:
        count = services.principals.revoke_tokens(session, actor=who.name, name=name)
    return TokensRevoked(principal=name, revoked=count)


@router.delete("/principals/{name}/tokens/{token_id}", summary="Revoke one token by its id")
def revoke_token(
    name: str, token_id: str, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> TokenOut:
    _managed(services, request, who, name)
    with services.db.write() as session:
        info = services.principals.revoke_token(session, actor=who.name, name=name, token_id=token_id)
    return _token_out(info)


@router.post(
    "/principals/{name}/disable",
    summary="Disable a principal: no token of it works; its queued jobs are cancelled, running ones stopped",
)
def disable_principal(
    name: str, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> PrincipalStatus:
    _managed(services, request, who, name)
    with services.db.write() as session:
        record = services.principals.set_disabled(session, actor=who.name, name=name, disabled=True)
        jobs = services.jobs.settle_for_disabled(session, owner=name, actor=who.name)
    for job_id in jobs.stopping:  # after the commit, as a cancel does: the runner stops the sandbox
        services.runner.cancel(job_id)
    return PrincipalStatus(
        principal=_out(record), jobs_cancelled=len(jobs.cancelled), jobs_stopping=len(jobs.stopping)
    )


@router.post("/principals/{name}/enable", summary="Enable a disabled principal: its live tokens work again")
def enable_principal(
    name: str, request: Request, who: PrincipalManagerDep, services: ServicesDep
) -> PrincipalStatus:
    _managed(services, request, who, name)
    with services.db.write() as session:
        record = services.principals.set_disabled(session, actor=who.name, name=name, disabled=False)
    return PrincipalStatus(principal=_out(record))
