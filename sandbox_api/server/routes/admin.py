"""Domains, principals, tokens and keys: the admin's resources."""

from __future__ import annotations

from fastapi import APIRouter, status

from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.schemas import (
    DomainCreate,
    DomainOut,
    KeyRotated,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalOut,
    TokenCreated,
    TokensRevoked,
)
from sandbox_api.server.deps import AdminDep, PrincipalDep, ServicesDep
from sandbox_api.server.openapi_doc import link
from sandbox_api.server.problems import raises

router = APIRouter(prefix="/v1", tags=["admin"])

# What a new principal leads to (OpenAPI links).
TOKEN_LINKS = (("CreateToken", "create_token"), ("RevokeTokens", "revoke_tokens"))


@router.post(
    "/domains",
    status_code=status.HTTP_201_CREATED,
    summary="Create a domain (and its key)",
    responses=raises(NotAuthenticated, Forbidden, Conflict, InvalidInput),
)
def create_domain(body: DomainCreate, who: AdminDep, services: ServicesDep) -> DomainOut:
    with services.db.write() as session:
        domain = services.principals.create_domain(
            session, actor=who.name, name=body.name, description=body.description
        )
    return DomainOut(name=domain.name, description=domain.description, kek_id=domain.kek_id)


@router.get("/domains", summary="List domains", responses=raises(NotAuthenticated))
def list_domains(_who: PrincipalDep, services: ServicesDep) -> list[DomainOut]:
    return [
        DomainOut(name=d.name, description=d.description, kek_id=d.kek_id)
        for d in services.principals.list_domains()
    ]


@router.post(
    "/domains/{name}/keys/rotate",
    summary="Rotate the domain's key-encryption key; data keys are re-wrapped, data is untouched",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def rotate_domain_key(name: str, who: AdminDep, services: ServicesDep) -> KeyRotated:
    with services.db.write() as session:
        kek_id, count = services.lifecycle.rotate_domain_key(session, actor=who.name, name=name)
    return KeyRotated(domain=name, kek_id=kek_id, rewrapped_versions=count)


@router.post(
    "/principals",
    status_code=status.HTTP_201_CREATED,
    summary="Create a principal; the answer holds its first token (shown once)",
    responses={
        **raises(NotAuthenticated, Forbidden, Conflict, InvalidInput, NotFound),
        201: {
            "links": {
                name: link(target, name="$response.body#/principal/name") for name, target in TOKEN_LINKS
            }
        },
    },
)
def create_principal(body: PrincipalCreate, who: AdminDep, services: ServicesDep) -> PrincipalCreated:
    with services.db.write() as session:
        principal, token = services.principals.create_principal(
            session, actor=who.name, name=body.name, role=body.role, domain=body.domain, groups=body.groups
        )
    return PrincipalCreated(
        principal=PrincipalOut(
            name=principal.name, role=principal.role, domain=principal.domain, groups=list(principal.groups)
        ),
        token=token,
    )


@router.get("/principals", summary="List principals", responses=raises(NotAuthenticated, Forbidden))
def list_principals(_who: AdminDep, services: ServicesDep) -> list[PrincipalOut]:
    return [
        PrincipalOut(name=p.name, role=p.role, domain=p.domain, groups=list(p.groups))
        for p in services.principals.list_principals()
    ]


@router.post(
    "/principals/{name}/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Issue another token (shown once)",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def create_token(name: str, who: AdminDep, services: ServicesDep) -> TokenCreated:
    with services.db.write() as session:
        token = services.principals.issue_token(session, actor=who.name, name=name)
    return TokenCreated(principal=name, token=token)


@router.delete(
    "/principals/{name}/tokens",
    summary="Revoke every token of a principal",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def revoke_tokens(name: str, who: AdminDep, services: ServicesDep) -> TokensRevoked:
    with services.db.write() as session:
        count = services.principals.revoke_tokens(session, actor=who.name, name=name)
    return TokensRevoked(principal=name, revoked=count)
