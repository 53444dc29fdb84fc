"""FastAPI dependencies: the services bundle, the authenticated principal, role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crypto.key_provider import DeploymentKeys
from sandbox_api.clock import Clock
from sandbox_api.errors import Forbidden, NotAuthenticated
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal, parse_bearer
from sandbox_api.server.observability.bundle import Observability
from sandbox_api.server.runner import JobRunner
from sandbox_api.server.services.alerts import AlertService
from sandbox_api.server.services.applications import ApplicationService
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.catalog import CatalogService
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.keys import KeyLifecycle
from sandbox_api.server.services.principals import PrincipalService
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.replay import ReplayService
from sandbox_api.server.services.scopes import ScopeService
from sandbox_api.server.settings import Settings
from sandbox_api.server.sso import SingleSignOn, looks_like_jwt
from sandbox_api.server.store.db import Database


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    clock: Clock
    keys: DeploymentKeys
    audit: AuditLog
    principals: PrincipalService
    catalog: CatalogService
    scopes: ScopeService
    jobs: JobService
    runner: JobRunner
    receipts: ReceiptService
    lifecycle: KeyLifecycle
    replay: ReplayService
    observability: Observability
    applications: ApplicationService
    alerts: AlertService
    sso: SingleSignOn | None = None  # None: single sign-on is off


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# Declares the bearer scheme in the OpenAPI document (generated clients send the token); the header
# itself is read below, so that a missing or malformed one is audited and answered as a problem.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="a token an admin issued (sbx_…)")


def current_principal(
    request: Request,
    services: ServicesDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    token = parse_bearer(request.headers.get("authorization"))
    try:
        if token is None:
            raise NotAuthenticated("send `Authorization: Bearer <token>`; an admin issues tokens")
        principal = authenticate_token(services, token)
    except NotAuthenticated as exc:
        services.audit.record(
            event="auth.failed",
            actor="anonymous",
            details={"method": request.method, "path": request.url.path, "reason": exc.detail},
        )
        raise
    # The access trace (access_trace.py) names who asked; the request's state is its only carrier.
    request.state.principal = principal
    return principal


def authenticate_token(services: Services, token: str) -> Principal:
    """A bearer token or, where single sign-on is configured, an OIDC ID token (a JWT): the one check
    the API and the web console both make."""
    if services.sso is not None and looks_like_jwt(token):
        return services.principals.admit_sso(services.sso.authenticate(token))
    return services.principals.authenticate(token)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def deny(services: Services, request: Request, who: Principal, reason: str) -> Forbidden:
    """Audit a refused request and return the error to raise."""
    services.audit.record(
        event="request.denied",
        actor=who.name,
        details={
            "method": request.method,
            "path": request.url.path,
            "role": who.role.value,
            "reason": reason,
        },
    )
    return Forbidden(reason)


def require(*roles: Role) -> Callable[..., Principal]:
    allowed = frozenset(roles)

    def check(request: Request, services: ServicesDep, who: PrincipalDep) -> Principal:
        if who.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise deny(services, request, who, f"role {who.role.value} may not do this; allowed: {names}")
        return who

    return check


AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
# Admins, and domain administrators for their own domain (the target is checked by the route).
PrincipalManagerDep = Annotated[Principal, Depends(require(Role.ADMIN, Role.DOMAIN_ADMIN))]
StewardDep = Annotated[Principal, Depends(require(Role.STEWARD))]
OfficerDep = Annotated[Principal, Depends(require(Role.POLICY_OFFICER))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AuditorDep = Annotated[Principal, Depends(require(Role.AUDITOR))]
CatalogReaderDep = Annotated[
    Principal,
    Depends(require(Role.STEWARD, Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.OPERATOR)),
]
ScopeReaderDep = Annotated[
    Principal, Depends(require(Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.OPERATOR))
]
# Access applications: operators (their own), the officers who draft them, admins and auditors.
ApplicationReaderDep = Annotated[
    Principal, Depends(require(Role.OPERATOR, Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR))
]
# Alerts on unusual use: auditors read and acknowledge; admins read (they lift suspensions).
AlertReaderDep = Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN))]
JobReaderDep = Annotated[Principal, Depends(require(Role.OPERATOR, Role.ADMIN, Role.AUDITOR))]
JobCancellerDep = Annotated[Principal, Depends(require(Role.OPERATOR, Role.ADMIN))]
